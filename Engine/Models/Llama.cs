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
    /// <summary>The research hooks: read and rewrite intermediates during every pass (see <see cref="ForwardHook"/>).</summary>
    public ForwardHooks Hooks { get; }

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
        Hooks = new ForwardHooks(config.LayerCount);
        _sites = _stages.Select(a => new HookSite(this, a)).ToArray();
    }

    /// <summary>Token positions per KV block unless a caller picks otherwise: small enough that a sequence wastes
    /// little of its last block, large enough that attention reads keys in long runs.</summary>
    public const int DefaultBlockTokens = 32;

    /// <summary>A paged KV store of `blocks` blocks of `blockTokens` positions, split over the stages' backends when
    /// the layers are. The caller owns it and disposes it to return its memory (the model's disposal frees any left).</summary>
    public KvStore CreateStore(int blocks, KvElementType type, int blockTokens = DefaultBlockTokens)
    {
        var c = Config;
        var pools = new List<KvBlockPool>(_stages.Length);
        try
        {
            foreach (var s in Stages)
            {
                var shape = new KvPoolShape(s.LayerCount, blocks, blockTokens, c.KeyWidth, c.ValueWidth, type);
                shape.Validate();
                pools.Add(s.Backend.CreateKvPool(shape));
            }
        }
        catch
        {
            // A later stage's backend could not hold its part (device memory): free the parts already made.
            foreach (var pool in pools) pool.Dispose();
            throw;
        }
        return new KvStore([.. pools], blocks, blockTokens, type);
    }

    /// <summary>A KV cache for one sequence of up to `contextLength` tokens (F32 unless told otherwise: exact, as the
    /// golden checks need). The caller owns it and disposes it.</summary>
    public KvCache CreateCache(int contextLength, KvElementType type = KvElementType.F32, int blockTokens = DefaultBlockTokens)
    {
        if (contextLength <= 0) throw new ArgumentOutOfRangeException(nameof(contextLength), "a KV cache holds at least one token");
        int blocks = (contextLength + blockTokens - 1) / blockTokens;
        return new KvCache(CreateStore(blocks, type, blockTokens), contextLength);
    }

    /// <summary>Feeds tokens at positions [start, start + tokens.Length) of one sequence and writes logits: of the last
    /// token (logits.Length == vocab) or of every token (logits.Length == tokens.Length * vocab).</summary>
    public void Forward(ReadOnlySpan<int> tokens, int start, KvCache cache, Span<float> logits)
    {
        int vocab = Config.VocabSize;
        bool everyRow = logits.Length == tokens.Length * vocab && tokens.Length > 1;
        if (!everyRow && logits.Length != vocab)
            throw new ArgumentException($"logits must hold {vocab} or {tokens.Length} x {vocab} values", nameof(logits));
        cache.ThrowIfDisposed();
        if (start < 0 || start + tokens.Length > cache.ContextLength)
            throw new ContextOverflowException(cache.ContextLength, start, tokens.Length);

        var batch = SingleSequenceBatch(cache.Store.BlockTokens);
        for (int done = 0; done < tokens.Length; done += MaxBatch)
        {
            int rows = Math.Min(MaxBatch, tokens.Length - done);
            bool last = done + rows == tokens.Length;
            batch.Clear();
            batch.Add(tokens.Slice(done, rows), start + done, cache.BlockTable,
                everyRow ? LogitsWanted.Every : last ? LogitsWanted.Last : LogitsWanted.None, cache.SequenceId);
            Forward(batch, cache.Store, everyRow ? logits.Slice(done * vocab, rows * vocab) : last ? logits : []);
        }
    }

    ForwardBatch SingleSequenceBatch(int blockTokens)
    {
        if (_single is null || _single.BlockTokens != blockTokens) _single = new ForwardBatch(blockTokens);
        return _single;
    }
    ForwardBatch? _single;

    /// <summary>One step over a batch of rows from any number of sequences: each row's KV goes into its slot of `kv`,
    /// attends over its own sequence, and the logits of batch.LogitRows come out in that order (logits holds
    /// batch.LogitRowCount x vocab values). Every weight matrix is read once for all rows.</summary>
    public void Forward(ForwardBatch batch, KvStore kv, Span<float> logits)
    {
        int vocab = Config.VocabSize;
        if (batch.Rows == 0) throw new ArgumentException("the batch has no rows", nameof(batch));
        if (batch.Rows > MaxBatch) throw new ArgumentException($"the batch has {batch.Rows} rows; the model takes at most {MaxBatch} per step", nameof(batch));
        if (batch.LogitRowCount > MaxBatch) throw new ArgumentException($"at most {MaxBatch} rows of logits per step", nameof(batch));
        if (logits.Length != batch.LogitRowCount * vocab)
            throw new ArgumentException($"logits must hold {batch.LogitRowCount} x {vocab} values", nameof(logits));
        if (batch.BlockTokens != kv.BlockTokens) throw new ArgumentException($"the batch has blocks of {batch.BlockTokens} tokens, the KV store {kv.BlockTokens}", nameof(batch));
        kv.ThrowIfDisposed();
        foreach (int token in batch.Tokens)
            if ((uint)token >= (uint)vocab) throw new ArgumentOutOfRangeException(nameof(batch), $"token id {token} is outside the vocabulary of {vocab}");
        foreach (int block in batch.BlockTables)
            if ((uint)block >= (uint)kv.Blocks) throw new ArgumentOutOfRangeException(nameof(batch), $"block {block} is outside the KV store's {kv.Blocks} blocks");

        Layers(batch, kv);
        if (batch.LogitRowCount > 0) Logits(batch, logits);
    }

    /// <summary>Runs several sequences from position 0 in shared steps (up to MaxBatch rows each, whole sequences' rows
    /// side by side), each in its own blocks of `store` (tables[i], covering its length), as sequence ids[i] for hooks.
    /// logits[i], when given, receives every position's logits of sequence i (its length x vocab).</summary>
    public void ForwardSequences(IReadOnlyList<int[]> sequences, IReadOnlyList<long> ids, KvStore store, IReadOnlyList<int[]> tables, float[][]? logits)
    {
        int vocab = Config.VocabSize;
        var done = new int[sequences.Count];
        var batch = new ForwardBatch(store.BlockTokens);
        var stepLogits = logits is null ? [] : new float[MaxBatch * vocab];
        var owners = new List<(int Sequence, int First, int Rows)>();
        while (true)
        {
            batch.Clear();
            owners.Clear();
            int budget = MaxBatch;
            for (int i = 0; i < sequences.Count && budget > 0; i++)
            {
                int rows = Math.Min(sequences[i].Length - done[i], budget);
                if (rows <= 0) continue;
                batch.Add(sequences[i].AsSpan(done[i], rows), done[i], tables[i], logits is null ? LogitsWanted.None : LogitsWanted.Every, ids[i]);
                owners.Add((i, done[i], rows));
                done[i] += rows;
                budget -= rows;
            }
            if (batch.Rows == 0) return;
            if (logits is null) Layers(batch, store);
            else
            {
                Forward(batch, store, stepLogits.AsSpan(0, batch.LogitRowCount * vocab));
                int row = 0;
                foreach (var (sequence, first, rows) in owners)
                {
                    stepLogits.AsSpan(row * vocab, rows * vocab).CopyTo(logits[sequence].AsSpan(first * vocab));
                    row += rows;
                }
            }
        }
    }

    /// <summary>logits = W_out · norm(h) for hidden states of any layer (rows x d_model): the logit lens. The same
    /// operations as the model's own logits, in slices of MaxBatch rows.</summary>
    public void ProjectToVocabulary(ReadOnlySpan<float> hidden, Span<float> logits)
    {
        var c = Config;
        var a = _stages[^1];
        var be = a.Backend;
        int width = c.EmbeddingLength, vocab = c.VocabSize, total = hidden.Length / width;
        if (hidden.Length % width != 0 || logits.Length != total * vocab)
            throw new ArgumentException($"hidden must be rows x {width} and logits rows x {vocab}");
        for (int done = 0; done < total; done += MaxBatch)
        {
            int rows = Math.Min(MaxBatch, total - done);
            be.Write(a.Gathered!, 0, hidden.Slice(done * width, rows * width));
            be.RmsNorm(a.Gathered!, Weights.OutputNorm, c.RmsNormEpsilon, rows, a.Norm);
            be.MatMul(Weights.Output, a.Norm, rows, a.Logits!);
            be.Read(a.Logits!, 0, logits.Slice(done * vocab, rows * vocab));
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
        cache.ThrowIfDisposed();
        if (start < 0 || start + tokens.Length > cache.ContextLength)
            throw new ContextOverflowException(cache.ContextLength, start, tokens.Length);
        foreach (int token in tokens)
            if ((uint)token >= (uint)vocab) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {token} is outside the vocabulary of {vocab}");

        var a = _stages[^1];
        var batch = SingleSequenceBatch(cache.Store.BlockTokens);
        for (int done = 0; done < tokens.Length; done += MaxBatch)
        {
            int rows = Math.Min(MaxBatch, tokens.Length - done);
            batch.Clear();
            batch.Add(tokens.Slice(done, rows), start + done, cache.BlockTable, LogitsWanted.None, cache.SequenceId);
            Layers(batch, cache.Store);
            a.Backend.RmsNorm(a.X, Weights.OutputNorm, Config.RmsNormEpsilon, rows, a.Norm);
            Site(a, -1, batch)?.Point("result_norm", a.Norm, width);
            a.Backend.Read(a.Norm, 0, hidden.Slice(done * width, rows * width));
        }
    }

    void Layers(ForwardBatch batch, KvStore kv)
    {
        int rows = batch.Rows, width = Config.EmbeddingLength;

        var first = _stages[0];
        first.Backend.Embed(Weights.TokenEmbedding, batch, first.X);
        Site(first, -1, batch)?.Point("inp_embd", first.X, width);

        for (int s = 0; s < _stages.Length; s++)
        {
            var a = _stages[s];
            if (s > 0) HandOver(_stages[s - 1], a, rows * width);
            for (int l = a.Stage.FirstLayer; l < a.Stage.EndLayer; l++)
                Layer(a, l, kv.Pools[s], l - a.Stage.FirstLayer, batch);
        }
    }

    /// <summary>One transformer block on the residual stream a.X. `cacheLayer` is the layer's index in the
    /// stage's own pool.</summary>
    void Layer(StageActivations a, int l, KvBlockPool cache, int cacheLayer, ForwardBatch batch)
    {
        int rows = batch.Rows;
        var c = Config;
        var be = a.Backend;
        var w = Weights.Layers[l];
        int width = c.EmbeddingLength;
        var hooks = Site(a, l, batch); // null unless a hook or observer is attached: then every hook point is one null check

        hooks?.Point("l_in", a.X, width);
        // Self-attention on the normalized input.
        be.RmsNorm(a.X, w.AttentionNorm, c.RmsNormEpsilon, rows, a.Norm);
        hooks?.Point("attn_norm", a.Norm, width);
        be.MatMul(w.Query, a.Norm, rows, a.Q);
        be.MatMul(w.Key, a.Norm, rows, a.K);
        be.MatMul(w.Value, a.Norm, rows, a.V);
        if (w.QueryBias is not null) be.AddBias(a.Q, w.QueryBias, rows);
        if (w.KeyBias is not null) be.AddBias(a.K, w.KeyBias, rows);
        if (w.ValueBias is not null) be.AddBias(a.V, w.ValueBias, rows);
        if (w.QueryNorm is not null) be.RmsNorm(a.Q, w.QueryNorm, c.RmsNormEpsilon, rows * c.HeadCount, a.Q);
        if (w.KeyNorm is not null) be.RmsNorm(a.K, w.KeyNorm, c.RmsNormEpsilon, rows * c.KvHeadCount, a.K);
        be.Rope(a.Q, batch, c.HeadCount, _rope);                 // each row at its own position
        be.Rope(a.K, batch, c.KvHeadCount, _rope);
        hooks?.Point("Qcur", a.Q, c.QueryWidth);
        hooks?.Point("Kcur", a.K, c.KeyWidth);
        hooks?.Point("Vcur", a.V, c.ValueWidth);
        be.StoreKv(cache, cacheLayer, batch, a.K, a.V);
        if (hooks is not null && hooks.WantsAttentionScores())
            hooks.AttentionWithScores(cache, cacheLayer);          // the scores formed explicitly, for their hooks
        else
            be.Attention(a.Q, cache, cacheLayer, batch, c.HeadCount, c.KvHeadCount, c.HeadDim, c.ValueHeadDim, a.Attention);
        hooks?.Point("kqv_out", a.Attention, c.HeadCount * c.ValueHeadDim);
        be.MatMul(w.Output, a.Attention, rows, a.Projected);
        hooks?.Point("attn_out", a.Projected, width);
        be.Add(a.X, a.Projected, rows * width);                  // residual
        hooks?.Point("ffn_inp", a.X, width);

        // Feed-forward on the normalized residual stream: one SwiGLU, or a mixture of SwiGLU experts.
        be.RmsNorm(a.X, w.FeedForwardNorm, c.RmsNormEpsilon, rows, a.Norm);
        hooks?.Point("ffn_norm", a.Norm, width);
        FeedForward(a, w.FeedForward, rows, hooks);              // a.Norm -> a.Projected
        hooks?.Point("ffn_out", a.Projected, width);
        be.Add(a.X, a.Projected, rows * width);                  // residual
        hooks?.Point("l_out", a.X, width);
    }

    static void FeedForward(StageActivations a, FeedForwardWeights weights, int rows, HookSite? hooks)
    {
        switch (weights)
        {
            case SwiGluWeights dense: a.SwiGlu.Forward(dense, a.Norm, rows, a.Projected, hooks); break;
            case MixtureOfExpertsWeights moe: a.Experts!.Forward(moe, a.Norm, rows, a.Projected, hooks); break;
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

    /// <summary>logits = W_out · norm(x) for the rows that want them, gathered first so the output matrix (the largest
    /// of many models) is read once for all of them and not at all for the rest.</summary>
    void Logits(ForwardBatch batch, Span<float> logits)
    {
        var c = Config;
        var a = _stages[^1];
        var be = a.Backend;
        int width = c.EmbeddingLength, n = batch.LogitRowCount;
        var rows = batch.LogitRows;
        bool allRows = n == batch.Rows;
        if (!allRows)
            for (int i = 0; i < n; i++) be.Copy(a.X, rows[i] * width, a.Gathered!, i * width, width);
        be.RmsNorm(allRows ? a.X : a.Gathered!, Weights.OutputNorm, c.RmsNormEpsilon, n, a.Norm);
        var hooks = Site(a, -1, batch);
        hooks?.LogitRowsPoint("result_norm", a.Norm, width);
        be.MatMul(Weights.Output, a.Norm, n, a.Logits!);
        hooks?.LogitRowsPoint("result_output", a.Logits!, c.VocabSize);
        be.Read(a.Logits!, 0, logits);
    }

    readonly HookSite[] _sites;

    /// <summary>The hook site of stage `a` for this layer and batch, or null when no hook and no observer is attached
    /// (the pass then pays nothing for hook points).</summary>
    HookSite? Site(StageActivations a, int layer, ForwardBatch batch)
    {
        if (Observer is null && Hooks.Table is null) return null;
        var site = _sites[Array.IndexOf(_stages, a)];
        site.Begin(layer, batch);
        return site;
    }

    public void Dispose()
    {
        foreach (var stage in Stages) stage.Backend.Dispose();
    }
}
