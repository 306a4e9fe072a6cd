using Engine.Models;

namespace Engine.Backends;

/// <summary>A float32 activation buffer owned by a backend (host memory on the CPU, device memory on a GPU).
/// The model addresses buffers only through the backend, so the same model code runs on either.</summary>
internal abstract class ActivationBuffer(string name, int length)
{
    public string Name { get; } = name;
    public int Length { get; } = length;
}

/// <summary>The key/value cache of one sequence, preallocated for the whole context. It holds memory in its
/// backend (host arrays on the CPU, device buffers on a GPU) until it is disposed; a session owns its cache and
/// disposes it when it ends or is replaced. Disposing twice does nothing; a disposed cache refuses further use
/// with an <see cref="ObjectDisposedException"/>.</summary>
internal abstract class KvCache(int layers, int contextLength, int keyWidth, int valueWidth) : IDisposable
{
    int _disposed;

    public int Layers { get; } = layers;
    public int ContextLength { get; } = contextLength;
    public int KeyWidth { get; } = keyWidth;
    public int ValueWidth { get; } = valueWidth;

    /// <summary>Bytes of memory the cache holds in its backend: every layer's keys and values for the whole
    /// context, or 0 once disposed.</summary>
    public long Bytes => IsDisposed ? 0 : (long)Layers * ContextLength * (KeyWidth + ValueWidth) * sizeof(float);

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>What the cache is, for messages: its size, which names it among a process's caches well enough.</summary>
    public override string ToString() => $"KV cache ({Layers} layers x {ContextLength} tokens)";

    /// <summary>Throws an <see cref="ObjectDisposedException"/> naming the cache once it is disposed: backends
    /// call it once per operation on a cache, before touching its memory.</summary>
    public void ThrowIfDisposed()
    {
        if (IsDisposed) throw new ObjectDisposedException(ToString(),
            "the KV cache was disposed (its session ended or was replaced, or its model was disposed); create a new one with CreateCache");
    }

    /// <summary>Returns the cache's memory to its backend. Only the first call does anything (also when several
    /// threads call at once).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Release();
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees the cache's memory; called exactly once, by the first <see cref="Dispose"/>.</summary>
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
    /// <summary>A cache of `layers` layers for `contextLength` tokens in this backend's memory. The caller owns it
    /// and disposes it to return that memory; the backend's own disposal frees any cache still held.</summary>
    KvCache CreateKvCache(int layers, int contextLength, int keyWidth, int valueWidth);

    /// <summary>x[t] = row tokens[t] of the embedding table.</summary>
    void Embed(WeightMatrix table, ReadOnlySpan<int> tokens, ActivationBuffer x);
    /// <summary>y[r] = x[r] / rms(x[r]) * weight, for rows of `width` (width == weight.Length).</summary>
    void RmsNorm(ActivationBuffer x, WeightVector weight, float epsilon, int rows, ActivationBuffer y);
    /// <summary>y[t] = W x[t] for t in [0, rows): y is rows x W.Rows, x is rows x W.Cols.</summary>
    void MatMul(WeightMatrix w, ActivationBuffer x, int rows, ActivationBuffer y);
    /// <summary>y[r] += bias for each of `rows` rows.</summary>
    void AddBias(ActivationBuffer y, WeightVector bias, int rows);
    /// <summary>Rotates each head of x (rows x heads*headDim) by the angle of its token's position: token t of the
    /// batch is at position start + t (a batch is always consecutive positions, so a GPU derives them itself
    /// instead of being sent them each step).</summary>
    void Rope(ActivationBuffer x, int rows, int heads, int start, RopeParameters rope);
    /// <summary>Writes k and v of `rows` tokens into the cache of `layer` at positions [start, start+rows).</summary>
    void StoreKv(KvCache cache, int layer, int start, int rows, ActivationBuffer k, ActivationBuffer v);
    /// <summary>Causal grouped-query attention of `rows` queries at positions [start, start+rows) over the
    /// cache of `layer`: output is rows x heads*valueDim.</summary>
    void Attention(ActivationBuffer q, KvCache cache, int layer, int start, int rows, int heads, int kvHeads, int headDim, int valueDim, ActivationBuffer output);
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
