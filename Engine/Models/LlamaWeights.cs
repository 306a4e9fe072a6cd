namespace Engine.Models;

/// <summary>The weights of one transformer block, shapes in y = W x form ([input x output]).</summary>
public sealed record LlamaLayerWeights(
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
    WeightMatrix Gate,            // [d_model x d_ff]
    WeightMatrix Up,              // [d_model x d_ff]
    WeightMatrix Down);           // [d_ff x d_model]

/// <summary>All weights of a dense Llama-family model, declared with their expected shapes and checked at load.</summary>
public sealed record LlamaWeights(
    WeightMatrix TokenEmbedding,  // [d_model x vocab]: row t is the embedding of token t
    LlamaLayerWeights[] Layers,
    WeightVector OutputNorm,      // [d_model]
    WeightMatrix Output,          // [d_model x vocab], the embedding itself when tied
    WeightVector? RopeFrequencyFactors) // llama 3.1+: per-pair divisors of the RoPE frequencies
{
    public static LlamaWeights Load(ModelConfig c, ITensorSource source)
    {
        var traits = ArchitectureTraits.Get(c.Architecture);
        var w = new WeightLoader(source);
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
                Gate: w.Matrix(P("ffn_gate.weight"), c.EmbeddingLength, c.FeedForwardLength),
                Up: w.Matrix(P("ffn_up.weight"), c.EmbeddingLength, c.FeedForwardLength),
                Down: w.Matrix(P("ffn_down.weight"), c.FeedForwardLength, c.EmbeddingLength));
        }
        var embedding = w.Matrix("token_embd.weight", c.EmbeddingLength, c.VocabSize);
        // M4: a missing output projection means the embedding is tied (documented fallback, as llama.cpp).
        var output = w.TryMatrix("output.weight", c.EmbeddingLength, c.VocabSize) ?? embedding;
        return new LlamaWeights(embedding, layers, w.Vector("output_norm.weight", c.EmbeddingLength), output,
            w.TryVector("rope_freqs.weight", c.RopeDimensions / 2));
    }
}
