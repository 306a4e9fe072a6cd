using Engine.Backends;

namespace Engine.Models;

/// <summary>The weights of one transformer block, shapes in y = W x form ([input x output]).</summary>
internal sealed record LlamaLayerWeights(
    WeightVector AttentionNorm,   // [d_model]
    WeightMatrix Query,           // [d_model x n_head*head_dim]
    WeightMatrix Key,             // [d_model x n_kv_head*head_dim]
    WeightMatrix Value,           // [d_model x n_kv_head*value_dim]
    WeightVector? QueryBias,      // qwen2
    WeightVector? KeyBias,        // qwen2
    WeightVector? ValueBias,      // qwen2
    WeightVector? QueryNorm,      // qwen3: [head_dim], applied to every head
    WeightVector? KeyNorm,        // qwen3
    WeightMatrix Output,          // [n_head*value_dim x d_model]
    WeightVector FeedForwardNorm, // [d_model]
    FeedForwardWeights FeedForward); // one SwiGLU, or a mixture of experts

/// <summary>All weights of a Llama-family model, declared with their expected shapes and checked at load.</summary>
internal sealed record LlamaWeights(
    WeightMatrix TokenEmbedding,  // [d_model x vocab]: row t is the embedding of token t
    LlamaLayerWeights[] Layers,
    WeightVector OutputNorm,      // [d_model]
    WeightMatrix Output,          // [d_model x vocab], the embedding itself when tied
    WeightVector? RopeFrequencyFactors) // llama 3.1+: per-pair divisors of the RoPE frequencies
{
    /// <summary>Every matrix, each once (a tied output is the embedding itself).</summary>
    public IEnumerable<WeightMatrix> Matrices() => Part(0, Layers.Length, embedding: true, output: true).AllMatrices;

    /// <summary>Every vector (norm scales, biases, RoPE frequency factors).</summary>
    public IEnumerable<WeightVector> Vectors() => Part(0, Layers.Length, embedding: true, output: true).Vectors;

    /// <summary>The weights of layers [firstLayer, firstLayer + layerCount), with the token embedding and the
    /// output head (its norm and projection) when asked: what one backend of a split model computes with.
    /// Each matrix appears once (a tied output is the embedding itself). RoPE factors go with every part.</summary>
    public WeightSet Part(int firstLayer, int layerCount, bool embedding, bool output)
    {
        var matrices = new List<WeightMatrix>();
        var seen = new HashSet<WeightMatrix>(ReferenceEqualityComparer.Instance);
        void Add(WeightMatrix m) { if (seen.Add(m)) matrices.Add(m); }
        var vectors = new List<WeightVector>();
        var stacks = new List<ExpertMatrices>();
        if (embedding) Add(TokenEmbedding);
        if (RopeFrequencyFactors is not null) vectors.Add(RopeFrequencyFactors);
        foreach (var layer in Layers.AsSpan(firstLayer, layerCount))
        {
            Add(layer.Query); Add(layer.Key); Add(layer.Value); Add(layer.Output);
            foreach (var m in FeedForwardMatrices(layer.FeedForward)) Add(m);
            if (layer.FeedForward is MixtureOfExpertsWeights moe) stacks.AddRange([moe.Gate, moe.Up, moe.Down]);
            foreach (var v in new[] { layer.AttentionNorm, layer.QueryBias, layer.KeyBias, layer.ValueBias, layer.QueryNorm, layer.KeyNorm, layer.FeedForwardNorm })
                if (v is not null) vectors.Add(v);
        }
        if (output) { Add(Output); vectors.Add(OutputNorm); }
        bool embeddingMultiplied = output && ReferenceEquals(TokenEmbedding, Output);
        return new WeightSet(matrices, vectors) { ExpertStacks = stacks, LookupOnly = embedding && !embeddingMultiplied ? [TokenEmbedding] : [] };
    }

    /// <summary>The feed-forward's matrices other than the expert stacks.</summary>
    static IEnumerable<WeightMatrix> FeedForwardMatrices(FeedForwardWeights weights)
    {
        static IEnumerable<WeightMatrix> SwiGluMatrices(SwiGluWeights w) => [w.Gate, w.Up, w.Down];
        return weights switch
        {
            SwiGluWeights dense => SwiGluMatrices(dense),
            MixtureOfExpertsWeights moe => new[] { moe.Router }
                .Concat(moe.SharedExpert is null ? [] : SwiGluMatrices(moe.SharedExpert))
                .Concat(moe.SharedExpertGate is null ? [] : [moe.SharedExpertGate]),
            _ => throw new NotSupportedException($"feed-forward {weights.GetType().Name}"),
        };
    }

    public static LlamaWeights Load(ModelConfig c, ITensorSource source, QuantizedLinearSource? quantized = null)
    {
        var traits = ArchitectureTraits.Get(c.Architecture);
        var w = new WeightLoader(source, quantized);
        var layers = new LlamaLayerWeights[c.LayerCount];
        for (int i = 0; i < c.LayerCount; i++)
        {
            string P(string name) => $"blk.{i}.{name}";
            layers[i] = new LlamaLayerWeights(
                AttentionNorm: w.Vector(P("attn_norm.weight"), c.EmbeddingLength),
                Query: w.Matrix(P("attn_q.weight"), c.EmbeddingLength, c.QueryWidth),
                Key: w.Matrix(P("attn_k.weight"), c.EmbeddingLength, c.KeyWidth),
                Value: w.Matrix(P("attn_v.weight"), c.EmbeddingLength, c.ValueWidth),
                QueryBias: traits.QkvBias ? w.Vector(P("attn_q.bias"), c.QueryWidth) : w.TryVector(P("attn_q.bias"), c.QueryWidth),
                KeyBias: traits.QkvBias ? w.Vector(P("attn_k.bias"), c.KeyWidth) : w.TryVector(P("attn_k.bias"), c.KeyWidth),
                ValueBias: traits.QkvBias ? w.Vector(P("attn_v.bias"), c.ValueWidth) : w.TryVector(P("attn_v.bias"), c.ValueWidth),
                QueryNorm: traits.QkNorm ? w.Vector(P("attn_q_norm.weight"), c.HeadDim) : null,
                KeyNorm: traits.QkNorm ? w.Vector(P("attn_k_norm.weight"), c.HeadDim) : null,
                Output: w.Matrix(P("attn_output.weight"), c.HeadCount * c.ValueHeadDim, c.EmbeddingLength),
                FeedForwardNorm: w.Vector(P("ffn_norm.weight"), c.EmbeddingLength),
                FeedForward: c.IsMoeLayer(i) ? MixtureOfExperts(w, c, traits, i) : SwiGlu(w, i, "", c.EmbeddingLength, c.FeedForwardLength));
        }
        var embedding = w.Matrix("token_embd.weight", c.EmbeddingLength, c.VocabSize);
        // M4: a missing output projection means the embedding is tied (documented fallback, as llama.cpp).
        var output = w.TryMatrix("output.weight", c.EmbeddingLength, c.VocabSize) ?? embedding;
        // A GPTQ / AWQ folder's float head, rounded to Q6_K (or Q8_0) for the fast mode. A tied embedding is then looked
        // up in the same rounded rows (one copy, as the Q4_0 GGUF of the model looks up its Q6_K one); a separate
        // embedding is kept.
        if (quantized is not null)
        {
            bool tied = ReferenceEquals(output, embedding);
            output = quantized.OutputHead(output);
            if (tied) embedding = output;
        }
        return new LlamaWeights(embedding, layers, w.Vector("output_norm.weight", c.EmbeddingLength), output,
            w.TryVector("rope_freqs.weight", c.RopeDimensions / 2));
    }

    /// <summary>blk.N.ffn_{gate,up,down}{suffix}.weight: the dense feed-forward (no suffix) or the shared expert ("_shexp").</summary>
    static SwiGluWeights SwiGlu(WeightLoader w, int layer, string suffix, int width, int hidden) => new(
        Gate: w.Matrix($"blk.{layer}.ffn_gate{suffix}.weight", width, hidden),
        Up: w.Matrix($"blk.{layer}.ffn_up{suffix}.weight", width, hidden),
        Down: w.Matrix($"blk.{layer}.ffn_down{suffix}.weight", hidden, width));

    static MixtureOfExpertsWeights MixtureOfExperts(WeightLoader w, ModelConfig c, ArchitectureTraits traits, int layer)
    {
        int width = c.EmbeddingLength, hidden = c.ExpertFeedForwardLength, count = c.ExpertCount;
        ExpertMatrices Experts(string kind, int cols, int rows)
        {
            string stacked = $"blk.{layer}.ffn_{kind}_exps.weight";
            return new ExpertMatrices(stacked, w.Experts(stacked, e => $"blk.{layer}.ffn_{kind}.{e}.weight", cols, rows, count));
        }
        return new MixtureOfExpertsWeights(
            Router: w.Matrix($"blk.{layer}.ffn_gate_inp.weight", width, count),
            Gate: Experts("gate", width, hidden),
            Up: Experts("up", width, hidden),
            Down: Experts("down", hidden, width),
            SharedExpert: traits.SharedExpert ? SwiGlu(w, layer, "_shexp", width, c.SharedExpertFeedForwardLength) : null,
            SharedExpertGate: traits.SharedExpert ? w.Matrix($"blk.{layer}.ffn_gate_inp_shexp.weight", width, 1) : null);
    }
}
