using Engine.Backends;

namespace Engine.Models;

/// <summary>The decoder-only transformer of Llama 2/3, Mixtral, Qwen2, Qwen3 and their MoE variants, written
/// as the papers describe it:
///
///   x = embed(tokens)
///   for each layer:
///       h = x + Wo · attention(RoPE(Wq · norm(x)), RoPE(Wk · norm(x)), Wv · norm(x))     (causal, grouped-query)
///       x = h + FFN(norm(h))
///   logits = W_out · norm(x)
///
/// norm is RMSNorm with a learned scale. FFN is SwiGLU, W_down · (silu(W_gate · h) ⊙ (W_up · h)), or in MoE
/// layers a router's weighted sum of a few SwiGLU experts (MoeFeedForward). Qwen2 adds biases to q, k, v;
/// Qwen3 RMS-normalizes each head of q and k before RoPE. The heavy lifting is in the backend; this class only
/// says what happens in which order. The layers may be split over several backends (LayerStage: a GPU's first
/// layers, the CPU's rest); the residual stream x then changes hands between them.</summary>
internal sealed class Llama : IDisposable
{
    public ModelConfig Config { get; }
    public LlamaWeights Weights { get; }
    /// <summary>Which backend runs which layers: one stage, or a GPU's first layers and the CPU's rest.</summary>
    public IReadOnlyList<LayerStage> Stages { get; }
    /// <summary>The backend of the first stage (the only one unless the layers are split).</summary>
    public IBackend Backend => Stages[0].Backend;
    /// <summary>Most tokens one Forward call processes at once; longer prompts are fed in slices.</summary>
    public int MaxBatch { get; }
    public ForwardObserver? Observer { get; set; }

    readonly RopeParameters _rope;
    readonly StageActivations[] _stages;
    // The residual stream on its way from one stage's backend to the next (host memory, allocated once).
    readonly float[] _handOver;

    public Llama(ModelConfig config, LlamaWeights weights, IBackend backend, int maxBatch = 64)
        : this(config, weights, [new LayerStage(backend, 0, config.LayerCount)], maxBatch) { }

    public Llama(ModelConfig config, LlamaWeights weights, IReadOnlyList<LayerStage> stages, int maxBatch = 64)
    {
        LayerStage.Validate(stages, config.LayerCount);
        Config = config;
        Weights = weights;
        Stages = stages;
        MaxBatch = Math.Max(1, maxBatch);
        _rope = new RopeParameters(config.HeadDim, config.RopeDimensions, config.RopeStyle, config.RopeTheta, config.RopeScaling,
            weights.RopeFrequencyFactors?.Values);
        _stages = stages.Select((stage, i) => new StageActivations(stage, config, MaxBatch, computesLogits: i == stages.Count - 1)).ToArray();
        _handOver = stages.Count > 1 ? new float[MaxBatch * config.EmbeddingLength] : [];
    }

    /// <summary>A KV cache for `contextLength` tokens; split over the stages' backends when the layers are. The
    /// caller owns it and disposes it to return its memory (the model's disposal frees any cache left).</summary>
    public KvCache CreateCache(int contextLength)
    {
        var c = Config;
        if (_stages.Length == 1) return Backend.CreateKvCache(c.LayerCount, contextLength, c.KeyWidth, c.ValueWidth);
        var parts = new List<KvCache>(_stages.Length);
        try
        {
            foreach (var s in Stages) parts.Add(s.Backend.CreateKvCache(s.LayerCount, contextLength, c.KeyWidth, c.ValueWidth));
        }
        catch
        {
            // A later stage's backend could not hold its part (device memory): free the parts already made.
            foreach (var part in parts) part.Dispose();
            throw;
        }
        return new StagedKvCache([.. parts], c.LayerCount, contextLength, c.KeyWidth, c.ValueWidth);
    }

    /// <summary>Feeds tokens at positions [start, start + tokens.Length) and writes logits: of the last token
    /// (logits.Length == vocab) or of every token (logits.Length == tokens.Length * vocab).</summary>
    public void Forward(ReadOnlySpan<int> tokens, int start, KvCache cache, Span<float> logits)
    {
        int vocab = Config.VocabSize;
        bool everyRow = logits.Length == tokens.Length * vocab && tokens.Length > 1;
        if (!everyRow && logits.Length != vocab)
            throw new ArgumentException($"logits must hold {vocab} or {tokens.Length} x {vocab} values", nameof(logits));
        cache.ThrowIfDisposed();
        if (start < 0 || start + tokens.Length > cache.ContextLength)
            throw new ContextOverflowException(cache.ContextLength, start, tokens.Length);
        foreach (int token in tokens)
            if ((uint)token >= (uint)vocab) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {token} is outside the vocabulary of {vocab}");

        for (int done = 0; done < tokens.Length; done += MaxBatch)
        {
            int rows = Math.Min(MaxBatch, tokens.Length - done);
            var slice = tokens.Slice(done, rows);
            Layers(slice, start + done, cache);
            if (everyRow) Logits(rows, logits.Slice(done * vocab, rows * vocab), allRows: true);
            else if (done + rows == tokens.Length) Logits(rows, logits, allRows: false);
        }
    }

    /// <summary>Feeds tokens at positions [start, start + tokens.Length) and writes every token's final hidden state,
    /// after the output norm and before the output projection (llama.cpp's embedding mode): hidden is
    /// tokens.Length x d_model.</summary>
    public void ForwardHidden(ReadOnlySpan<int> tokens, int start, KvCache cache, Span<float> hidden)
    {
        int width = Config.EmbeddingLength, vocab = Config.VocabSize;
        if (hidden.Length != tokens.Length * width)
            throw new ArgumentException($"hidden must hold {tokens.Length} x {width} values", nameof(hidden));
        if (start < 0 || start + tokens.Length > cache.ContextLength)
            throw new ContextOverflowException(cache.ContextLength, start, tokens.Length);
        foreach (int token in tokens)
            if ((uint)token >= (uint)vocab) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {token} is outside the vocabulary of {vocab}");

        var a = _stages[^1];
        for (int done = 0; done < tokens.Length; done += MaxBatch)
        {
            int rows = Math.Min(MaxBatch, tokens.Length - done);
            Layers(tokens.Slice(done, rows), start + done, cache);
            a.Backend.RmsNorm(a.X, Weights.OutputNorm, Config.RmsNormEpsilon, rows, a.Norm);
            Observe(a, "result_norm", -1, a.Norm, rows, width);
            a.Backend.Read(a.Norm, 0, hidden.Slice(done * width, rows * width));
        }
    }

    void Layers(ReadOnlySpan<int> tokens, int start, KvCache cache)
    {
        int rows = tokens.Length, width = Config.EmbeddingLength;

        var first = _stages[0];
        first.Backend.Embed(Weights.TokenEmbedding, tokens, first.X);
        Observe(first, "inp_embd", -1, first.X, rows, width);

        for (int s = 0; s < _stages.Length; s++)
        {
            var a = _stages[s];
            if (s > 0) HandOver(_stages[s - 1], a, rows * width);
            var stageCache = cache is StagedKvCache staged ? staged.Parts[s] : cache;
            for (int l = a.Stage.FirstLayer; l < a.Stage.EndLayer; l++)
                Layer(a, l, stageCache, l - a.Stage.FirstLayer, start, rows);
        }
    }

    /// <summary>One transformer block on the residual stream a.X. `cacheLayer` is the layer's index in the
    /// stage's own cache.</summary>
    void Layer(StageActivations a, int l, KvCache cache, int cacheLayer, int start, int rows)
    {
        var c = Config;
        var be = a.Backend;
        var w = Weights.Layers[l];
        int width = c.EmbeddingLength;

        // Self-attention on the normalized input.
        be.RmsNorm(a.X, w.AttentionNorm, c.RmsNormEpsilon, rows, a.Norm);
        Observe(a, "attn_norm", l, a.Norm, rows, width);
        be.MatMul(w.Query, a.Norm, rows, a.Q);
        be.MatMul(w.Key, a.Norm, rows, a.K);
        be.MatMul(w.Value, a.Norm, rows, a.V);
        if (w.QueryBias is not null) be.AddBias(a.Q, w.QueryBias, rows);
        if (w.KeyBias is not null) be.AddBias(a.K, w.KeyBias, rows);
        if (w.ValueBias is not null) be.AddBias(a.V, w.ValueBias, rows);
        if (w.QueryNorm is not null) be.RmsNorm(a.Q, w.QueryNorm, c.RmsNormEpsilon, rows * c.HeadCount, a.Q);
        if (w.KeyNorm is not null) be.RmsNorm(a.K, w.KeyNorm, c.RmsNormEpsilon, rows * c.KvHeadCount, a.K);
        be.Rope(a.Q, rows, c.HeadCount, start, _rope);           // token t at position start + t
        be.Rope(a.K, rows, c.KvHeadCount, start, _rope);
        Observe(a, "Qcur", l, a.Q, rows, c.QueryWidth);
        Observe(a, "Kcur", l, a.K, rows, c.KeyWidth);
        Observe(a, "Vcur", l, a.V, rows, c.ValueWidth);
        be.StoreKv(cache, cacheLayer, start, rows, a.K, a.V);
        be.Attention(a.Q, cache, cacheLayer, start, rows, c.HeadCount, c.KvHeadCount, c.HeadDim, c.ValueHeadDim, a.Attention);
        Observe(a, "kqv_out", l, a.Attention, rows, c.HeadCount * c.ValueHeadDim);
        be.MatMul(w.Output, a.Attention, rows, a.Projected);
        be.Add(a.X, a.Projected, rows * width);                  // residual
        Observe(a, "ffn_inp", l, a.X, rows, width);

        // Feed-forward on the normalized residual stream: one SwiGLU, or a mixture of SwiGLU experts.
        be.RmsNorm(a.X, w.FeedForwardNorm, c.RmsNormEpsilon, rows, a.Norm);
        Observe(a, "ffn_norm", l, a.Norm, rows, width);
        FeedForward(a, w.FeedForward, l, rows);                  // a.Norm -> a.Projected
        Observe(a, "ffn_out", l, a.Projected, rows, width);
        be.Add(a.X, a.Projected, rows * width);                  // residual
        Observe(a, "l_out", l, a.X, rows, width);
    }

    void FeedForward(StageActivations a, FeedForwardWeights weights, int layer, int rows)
    {
        switch (weights)
        {
            case SwiGluWeights dense: a.SwiGlu.Forward(dense, a.Norm, rows, a.Projected); break;
            case MixtureOfExpertsWeights moe: a.Experts!.Forward(moe, a.Norm, rows, a.Projected, layer, Observer); break;
            default: throw new NotSupportedException($"feed-forward {weights.GetType().Name}");
        }
    }

    /// <summary>The residual stream of `length` values moves from one backend's memory to the next one's: the
    /// only copy a split model adds per step (one row of d_model floats per token).</summary>
    void HandOver(StageActivations from, StageActivations to, int length)
    {
        var values = _handOver.AsSpan(0, length);
        from.Backend.Read(from.X, 0, values);
        to.Backend.Write(to.X, 0, values);
    }

    void Logits(int rows, Span<float> logits, bool allRows)
    {
        var c = Config;
        var a = _stages[^1];
        var be = a.Backend;
        if (allRows)
        {
            be.RmsNorm(a.X, Weights.OutputNorm, c.RmsNormEpsilon, rows, a.Norm);
            Observe(a, "result_norm", -1, a.Norm, rows, c.EmbeddingLength);
            be.MatMul(Weights.Output, a.Norm, rows, a.Logits!);
            be.Read(a.Logits!, 0, logits);
            Observe(a, "result_output", -1, a.Logits!, rows, c.VocabSize);
        }
        else
        {
            be.Copy(a.X, (rows - 1) * c.EmbeddingLength, a.Norm, 0, c.EmbeddingLength);
            be.RmsNorm(a.Norm, Weights.OutputNorm, c.RmsNormEpsilon, 1, a.LastRow!);
            Observe(a, "result_norm", -1, a.LastRow!, 1, c.EmbeddingLength);
            be.MatMul(Weights.Output, a.LastRow!, 1, a.Logits!);
            be.Read(a.Logits!, 0, logits);
            Observe(a, "result_output", -1, a.Logits!, 1, c.VocabSize);
        }
    }

    void Observe(StageActivations a, string name, int layer, ActivationBuffer buffer, int rows, int width)
    {
        if (Observer is null) return;
        var copy = new float[rows * width];
        a.Backend.Read(buffer, 0, copy);
        Observer(name, layer, rows, width, copy);
    }

    public void Dispose()
    {
        foreach (var stage in Stages) stage.Backend.Dispose();
    }
}
