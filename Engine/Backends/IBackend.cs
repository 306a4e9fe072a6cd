using Engine.Models;

namespace Engine.Backends;

/// <summary>A float32 activation buffer owned by a backend (host memory on the CPU, device memory on a GPU).
/// The model addresses buffers only through the backend, so the same model code runs on either.</summary>
internal abstract class ActivationBuffer(string name, int length)
{
    public string Name { get; } = name;
    public int Length { get; } = length;
}

/// <summary>How a KV pool stores each key and value element: F16 is llama.cpp's default, F32 is exact (the golden
/// checks), Q8_0 halves F16's memory (ggml's block of 32 int8 values sharing one F16 scale).</summary>
internal enum KvElementType { F32, F16, Q8_0 }

/// <summary>The size of a KV pool: `Blocks` blocks of `BlockTokens` token positions, each holding every layer's key
/// (KeyWidth values) and value (ValueWidth values) of those positions.</summary>
internal sealed record KvPoolShape(int Layers, int Blocks, int BlockTokens, int KeyWidth, int ValueWidth, KvElementType Type)
{
    /// <summary>Bytes one element row of `width` values takes in the pool.</summary>
    public static long RowBytes(int width, KvElementType type) => type switch
    {
        KvElementType.F32 => width * 4L,
        KvElementType.F16 => width * 2L,
        KvElementType.Q8_0 => width / 32 * 34L,
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>Bytes of one block: every layer's keys and values for BlockTokens positions.</summary>
    public long BlockBytes => (long)Layers * BlockTokens * (RowBytes(KeyWidth, Type) + RowBytes(ValueWidth, Type));

    /// <summary>Checks the shape can be stored: positive sizes, and rows of whole 32-value blocks for Q8_0.</summary>
    public void Validate()
    {
        if (Layers <= 0 || Blocks <= 0 || BlockTokens <= 0 || KeyWidth <= 0 || ValueWidth <= 0)
            throw new ArgumentOutOfRangeException(nameof(Blocks), $"a KV pool needs positive sizes, not {this}");
        if (Type == KvElementType.Q8_0 && (KeyWidth % 32 != 0 || ValueWidth % 32 != 0))
            throw new NotSupportedException($"a q8_0 KV cache needs key and value widths that are multiples of 32 (this model has {KeyWidth} and {ValueWidth}); use --kv-type f16");
    }
}

/// <summary>Fixed-size blocks of KV memory in a backend (host memory on the CPU, device memory on a GPU): the paged
/// KV cache. Sequences do not own memory here; a block table (<see cref="Engine.Models.ForwardBatch"/>) says which
/// blocks hold which sequence's positions, so many sequences share one pool and each holds only the blocks its
/// tokens fill. Disposing twice does nothing; a disposed pool refuses further use with an
/// <see cref="ObjectDisposedException"/>.</summary>
internal abstract class KvBlockPool(KvPoolShape shape) : IDisposable
{
    int _disposed;

    public KvPoolShape Shape { get; } = shape;

    /// <summary>Bytes of memory the pool holds in its backend now (a backend may allocate blocks as they are first
    /// used), or 0 once disposed.</summary>
    public abstract long Bytes { get; }

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    public override string ToString() => $"KV pool ({Shape.Blocks} blocks x {Shape.BlockTokens} tokens x {Shape.Layers} layers, {Shape.Type})";

    /// <summary>Throws an <see cref="ObjectDisposedException"/> naming the pool once it is disposed: backends call it
    /// once per operation on a pool, before touching its memory.</summary>
    public void ThrowIfDisposed()
    {
        if (IsDisposed) throw new ObjectDisposedException(ToString(),
            "the KV cache was disposed (its session ended or was replaced, or its model was disposed); create a new one");
    }

    /// <summary>Copies every layer's keys and values of block `from` into block `to` (copy-on-write: a sequence that
    /// goes on differently from a block other sequences share continues in its own copy).</summary>
    public abstract void CopyBlock(int from, int to);

    /// <summary>Returns the pool's memory to its backend. Only the first call does anything (also when several threads
    /// call at once).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Release();
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees the pool's memory; called exactly once, by the first <see cref="Dispose"/>.</summary>
    protected abstract void Release();
}

/// <summary>RoPE as the model configures it: which dims rotate, how they pair, and the frequencies.</summary>
internal sealed record RopeParameters(int HeadDim, int RotatedDims, RopeStyle Style, double Theta, RopeScaling Scaling, float[]? FrequencyFactors);

/// <summary>Every heavy operation of a forward pass. Row-major activations: a buffer of `rows` tokens of
/// `width` floats. Parameter order: sources, arguments, destination.</summary>
internal interface IBackend : IDisposable
{
    string Name { get; }
    ActivationBuffer Allocate(string name, int length);
    /// <summary>A paged KV pool of the given shape in this backend's memory. The caller owns it and disposes it to
    /// return that memory; the backend's own disposal frees any pool still held.</summary>
    KvBlockPool CreateKvPool(KvPoolShape shape);

    /// <summary>x[t] = row batch.Tokens[t] of the embedding table, for every row of the batch (a device takes the token
    /// ids with the rest of the step's batch, in one copy).</summary>
    void Embed(WeightMatrix table, ForwardBatch batch, ActivationBuffer x);
    /// <summary>y[r] = x[r] / rms(x[r]) * weight, for rows of `width` (width == weight.Length).</summary>
    void RmsNorm(ActivationBuffer x, WeightVector weight, float epsilon, int rows, ActivationBuffer y);
    /// <summary>y[t] = W x[t] for t in [0, rows): y is rows x W.Rows, x is rows x W.Cols.</summary>
    void MatMul(WeightMatrix w, ActivationBuffer x, int rows, ActivationBuffer y);
    /// <summary>y[r] += bias for each of `rows` rows.</summary>
    void AddBias(ActivationBuffer y, WeightVector bias, int rows);
    /// <summary>Rotates each head of x (batch.Rows x heads*headDim) by the angle of its row's own position
    /// (batch.Positions).</summary>
    void Rope(ActivationBuffer x, ForwardBatch batch, int heads, RopeParameters rope);
    /// <summary>Writes each row's k and v into `layer` of the pool at the row's slot (batch.Slots: its block and
    /// offset in the block).</summary>
    void StoreKv(KvBlockPool pool, int layer, ForwardBatch batch, ActivationBuffer k, ActivationBuffer v);
    /// <summary>Causal grouped-query attention of every row over its own sequence's cached keys and values at positions
    /// [0, its position], read through the sequence's block table: output is batch.Rows x heads*valueDim. A row's
    /// result depends only on its query and its sequence's cache, never on the other rows of the batch.</summary>
    void Attention(ActivationBuffer q, KvBlockPool pool, int layer, ForwardBatch batch, int heads, int kvHeads, int headDim, int valueDim, ActivationBuffer output);
    /// <summary>Copies the keys and values `layer` of the pool holds for positions [0, positions) of one sequence, read
    /// through its block table, as floats: keys is positions x KeyWidth, values positions x ValueWidth (attention formed
    /// explicitly for research hooks; not on the fast path).</summary>
    void ReadKv(KvBlockPool pool, int layer, ReadOnlySpan<int> blockTable, int positions, Span<float> keys, Span<float> values);
    /// <summary>y = silu(gate) * up, element-wise over `length` values.</summary>
    void SwiGlu(ActivationBuffer gate, ActivationBuffer up, int length, ActivationBuffer y);
    /// <summary>x += y over `length` values (the residual connection).</summary>
    void Add(ActivationBuffer x, ActivationBuffer y, int length);
    /// <summary>x = 0 over `length` values.</summary>
    void Clear(ActivationBuffer x, int length);

    // Mixture of experts. The routing is computed and kept where the backend computes (device memory on a GPU),
    // so a decode step never moves it through the host: the model code only names the steps.

    /// <summary>Routing tables for batches of up to shape.MaxRows tokens, allocated once.</summary>
    ExpertRouting CreateExpertRouting(ExpertRoutingShape shape);
    /// <summary>For each of `rows` tokens: probabilities (rows x n_expert) = softmax or sigmoid of its router logits;
    /// its k most probable experts, most probable first (ties: lower expert first) and their weights (the chosen
    /// probabilities, renormalized to sum 1 when the shape says so), into `routing`.</summary>
    void RouteExperts(ActivationBuffer routerLogits, int rows, ExpertRouting routing, ActivationBuffer probabilities);
    /// <summary>y[t*k + slot] = W[chosen[t*k + slot]] · x[i] for t &lt; rows, where i is t (every chosen expert reads
    /// the token's own input) or t*k + slot when inputPerSlot (each reads its own hidden state). y holds rows*k rows
    /// of W.Rows. Only the chosen experts' weights are read, each at most once per batch where it can be.</summary>
    void ExpertMatMul(ExpertMatrices w, ExpertRouting routing, ActivationBuffer x, int rows, bool inputPerSlot, ActivationBuffer y);
    /// <summary>output[t] = Σ over slots, in slot order, of weight[t*k + slot] * expertOutputs[t*k + slot] (each
    /// product rounded before it is added, as ggml's mul then add), for rows of `width`.</summary>
    void CombineExperts(ActivationBuffer expertOutputs, ExpertRouting routing, int rows, int width, ActivationBuffer output);
    /// <summary>Copies the routing of `rows` tokens to the host: chosen and weights hold rows*k values (observers, tests).</summary>
    void ReadRouting(ExpertRouting routing, int rows, Span<int> chosen, Span<float> weights);
    /// <summary>dst[t] += sigmoid(gateLogits[t]) * src[t] for `rows` rows of `width` (the product rounded, then
    /// added): qwen2moe's gated shared expert.</summary>
    void AddSigmoidGated(ActivationBuffer gateLogits, ActivationBuffer src, int rows, int width, ActivationBuffer dst);
    /// <summary>Copies `length` values starting at `offset` into dst (logits out, observers).</summary>
    void Read(ActivationBuffer x, int offset, Span<float> dst);
    /// <summary>Copies values into x starting at `offset` (tests, observers that replace an intermediate).</summary>
    void Write(ActivationBuffer x, int offset, ReadOnlySpan<float> values);
    /// <summary>Copies src[offset..] into `length` values of dst starting at dstOffset (e.g. the last row).</summary>
    void Copy(ActivationBuffer src, int srcOffset, ActivationBuffer dst, int dstOffset, int length);
}
