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
/// says what happens in which order.</summary>
public sealed class Llama : IDisposable
{
    public ModelConfig Config { get; }
    public LlamaWeights Weights { get; }
    public IBackend Backend { get; }
    /// <summary>Most tokens one Forward call processes at once; longer prompts are fed in slices.</summary>
    public int MaxBatch { get; }
    public ForwardObserver? Observer { get; set; }

    readonly RopeParameters _rope;
    // Activations for up to MaxBatch tokens, allocated once (the forward pass allocates nothing).
    readonly ActivationBuffer _x, _norm, _q, _k, _v, _attention, _projected, _lastRow, _logits;
    readonly int[] _positions;
    readonly SwiGluFeedForward _swiGlu;
    readonly MoeFeedForward? _experts;

    public Llama(ModelConfig config, LlamaWeights weights, IBackend backend, int maxBatch = 64)
    {
        Config = config;
        Weights = weights;
        Backend = backend;
        MaxBatch = Math.Max(1, maxBatch);
        _rope = new RopeParameters(config.HeadDim, config.RopeDimensions, config.RopeStyle, config.RopeTheta, config.RopeScaling,
            weights.RopeFrequencyFactors?.Values);
        int b = MaxBatch, c = config.EmbeddingLength;
        _x = backend.Allocate("x", b * c);
        _norm = backend.Allocate("norm", b * c);
        _q = backend.Allocate("Qcur", b * config.QueryWidth);
        _k = backend.Allocate("Kcur", b * config.KeyWidth);
        _v = backend.Allocate("Vcur", b * config.ValueWidth);
        _attention = backend.Allocate("kqv_out", b * config.HeadCount * config.ValueHeadDim);
        _projected = backend.Allocate("proj", b * c);
        int widestHidden = Math.Max(config.FeedForwardLength, Math.Max(config.ExpertFeedForwardLength, config.SharedExpertFeedForwardLength));
        _swiGlu = new SwiGluFeedForward(backend, b, widestHidden);
        if (config.ExpertCount > 0) _experts = new MoeFeedForward(backend, config, _swiGlu, b);
        _lastRow = backend.Allocate("result_norm", c);
        _logits = backend.Allocate("result_output", b * config.VocabSize);
        _positions = new int[b];
    }

    public KvCache CreateCache(int contextLength) =>
        Backend.CreateKvCache(Config.LayerCount, contextLength, Config.KeyWidth, Config.ValueWidth);

    /// <summary>Feeds tokens at positions [start, start + tokens.Length) and writes logits: of the last token
    /// (logits.Length == vocab) or of every token (logits.Length == tokens.Length * vocab).</summary>
    public void Forward(ReadOnlySpan<int> tokens, int start, KvCache cache, Span<float> logits)
    {
        int vocab = Config.VocabSize;
        bool everyRow = logits.Length == tokens.Length * vocab && tokens.Length > 1;
        if (!everyRow && logits.Length != vocab)
            throw new ArgumentException($"logits must hold {vocab} or {tokens.Length} x {vocab} values", nameof(logits));
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

    void Layers(ReadOnlySpan<int> tokens, int start, KvCache cache)
    {
        var c = Config;
        var be = Backend;
        int rows = tokens.Length, width = c.EmbeddingLength;
        for (int t = 0; t < rows; t++) _positions[t] = start + t;
        var positions = _positions.AsSpan(0, rows);

        be.Embed(Weights.TokenEmbedding, tokens, _x);
        Observe("inp_embd", -1, _x, rows, width);

        for (int l = 0; l < c.LayerCount; l++)
        {
            var w = Weights.Layers[l];

            // Self-attention on the normalized input.
            be.RmsNorm(_x, w.AttentionNorm, c.RmsNormEpsilon, rows, _norm);
            Observe("attn_norm", l, _norm, rows, width);
            be.MatMul(w.Query, _norm, rows, _q);
            be.MatMul(w.Key, _norm, rows, _k);
            be.MatMul(w.Value, _norm, rows, _v);
            if (w.QueryBias is not null) be.AddBias(_q, w.QueryBias, rows);
            if (w.KeyBias is not null) be.AddBias(_k, w.KeyBias, rows);
            if (w.ValueBias is not null) be.AddBias(_v, w.ValueBias, rows);
            if (w.QueryNorm is not null) be.RmsNorm(_q, w.QueryNorm, c.RmsNormEpsilon, rows * c.HeadCount, _q);
            if (w.KeyNorm is not null) be.RmsNorm(_k, w.KeyNorm, c.RmsNormEpsilon, rows * c.KvHeadCount, _k);
            be.Rope(_q, rows, c.HeadCount, positions, _rope);
            be.Rope(_k, rows, c.KvHeadCount, positions, _rope);
            Observe("Qcur", l, _q, rows, c.QueryWidth);
            Observe("Kcur", l, _k, rows, c.KeyWidth);
            Observe("Vcur", l, _v, rows, c.ValueWidth);
            be.StoreKv(cache, l, start, rows, _k, _v);
            be.Attention(_q, cache, l, start, rows, c.HeadCount, c.KvHeadCount, c.HeadDim, c.ValueHeadDim, _attention);
            Observe("kqv_out", l, _attention, rows, c.HeadCount * c.ValueHeadDim);
            be.MatMul(w.Output, _attention, rows, _projected);
            be.Add(_x, _projected, rows * width);                   // residual
            Observe("ffn_inp", l, _x, rows, width);

            // Feed-forward on the normalized residual stream: one SwiGLU, or a mixture of SwiGLU experts.
            be.RmsNorm(_x, w.FeedForwardNorm, c.RmsNormEpsilon, rows, _norm);
            Observe("ffn_norm", l, _norm, rows, width);
            FeedForward(w.FeedForward, l, rows);                    // _norm -> _projected
            Observe("ffn_out", l, _projected, rows, width);
            be.Add(_x, _projected, rows * width);                   // residual
            Observe("l_out", l, _x, rows, width);
        }
    }

    void FeedForward(FeedForwardWeights weights, int layer, int rows)
    {
        switch (weights)
        {
            case SwiGluWeights dense: _swiGlu.Forward(dense, _norm, rows, _projected); break;
            case MixtureOfExpertsWeights moe: _experts!.Forward(moe, _norm, rows, _projected, layer, Observer); break;
            default: throw new NotSupportedException($"feed-forward {weights.GetType().Name}");
        }
    }

    void Logits(int rows, Span<float> logits, bool allRows)
    {
        var c = Config;
        if (allRows)
        {
            Backend.RmsNorm(_x, Weights.OutputNorm, c.RmsNormEpsilon, rows, _norm);
            Observe("result_norm", -1, _norm, rows, c.EmbeddingLength);
            Backend.MatMul(Weights.Output, _norm, rows, _logits);
            Backend.Read(_logits, 0, logits);
            Observe("result_output", -1, _logits, rows, c.VocabSize);
        }
        else
        {
            Backend.Copy(_x, (rows - 1) * c.EmbeddingLength, _norm, 0, c.EmbeddingLength);
            Backend.RmsNorm(_norm, Weights.OutputNorm, c.RmsNormEpsilon, 1, _lastRow);
            Observe("result_norm", -1, _lastRow, 1, c.EmbeddingLength);
            Backend.MatMul(Weights.Output, _lastRow, 1, _logits);
            Backend.Read(_logits, 0, logits);
            Observe("result_output", -1, _logits, 1, c.VocabSize);
        }
    }

    void Observe(string name, int layer, ActivationBuffer buffer, int rows, int width)
    {
        if (Observer is null) return;
        var copy = new float[rows * width];
        Backend.Read(buffer, 0, copy);
        Observer(name, layer, rows, width, copy);
    }

    public void Dispose() => Backend.Dispose();
}

/// <summary>A prompt plus generation that would not fit in the KV cache: never silently truncated.</summary>
public sealed class ContextOverflowException(int contextLength, int start, int count)
    : Exception($"the context holds {contextLength} tokens, but positions {start}..{start + count - 1} were requested " +
                $"({start} already in the cache + {count} new); use a larger --ctx or a shorter prompt")
{
    public int ContextLength { get; } = contextLength;
}
