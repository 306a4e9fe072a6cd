using System.Diagnostics;
using Engine.Backends;
using Engine.Models;

namespace Engine.Benchmarking;

/// <summary>A backend whose work can be waited for: a GPU queues its kernels, so timing one operation needs the device
/// to finish it first.</summary>
internal interface ISynchronizingBackend
{
    /// <summary>Returns once every operation queued so far has finished.</summary>
    void Synchronize();
}

/// <summary>Seconds and calls per kind of operation (matmul by weight type, attention, norms, ...), summed over the
/// operations <see cref="TimingBackend"/> ran; what `engine bench --profile` prints.</summary>
internal sealed class OperationTimes
{
    readonly Dictionary<string, (long Ticks, long Calls)> _times = new(StringComparer.Ordinal);

    /// <summary>Off, operations are not counted (work outside the measured part, such as filling the cache to a depth).</summary>
    public bool Recording { get; set; } = true;

    public void Add(string operation, long ticks)
    {
        if (!Recording) return;
        lock (_times)
        {
            _times.TryGetValue(operation, out var t);
            _times[operation] = (t.Ticks + ticks, t.Calls + 1);
        }
    }

    public void Clear() { lock (_times) _times.Clear(); }

    /// <summary>Every operation, most time first: its name, total seconds and calls.</summary>
    public IReadOnlyList<(string Operation, double Seconds, long Calls)> Snapshot()
    {
        lock (_times)
            return [.. _times.Select(kv => (kv.Key, kv.Value.Ticks / (double)Stopwatch.Frequency, kv.Value.Calls)).OrderByDescending(t => t.Item2)];
    }
}

/// <summary>Forwards every operation to another backend and adds its wall time to <see cref="OperationTimes"/>, waiting
/// for a device to finish each one (so a profiled run on a GPU is slower than a plain one: the shares are what count).
/// It does not own the backend it wraps: disposing it does nothing.</summary>
internal sealed class TimingBackend(IBackend inner, OperationTimes times) : IBackend
{
    readonly ISynchronizingBackend? _device = inner as ISynchronizingBackend;

    public string Name => inner.Name;

    long Start()
    {
        _device?.Synchronize();
        return Stopwatch.GetTimestamp();
    }

    void Stop(string operation, long started)
    {
        _device?.Synchronize();
        times.Add(operation, Stopwatch.GetTimestamp() - started);
    }

    public ActivationBuffer Allocate(string name, int length) => inner.Allocate(name, length);
    public KvBlockPool CreateKvPool(KvPoolShape shape) => inner.CreateKvPool(shape);

    public void Embed(WeightMatrix table, ForwardBatch batch, ActivationBuffer x)
    {
        long t = Start(); inner.Embed(table, batch, x); Stop("embed", t);
    }

    public void RmsNorm(ActivationBuffer x, WeightVector weight, float epsilon, int rows, ActivationBuffer y)
    {
        long t = Start(); inner.RmsNorm(x, weight, epsilon, rows, y); Stop("rms_norm", t);
    }

    public void MatMul(WeightMatrix w, ActivationBuffer x, int rows, ActivationBuffer y)
    {
        long t = Start(); inner.MatMul(w, x, rows, y); Stop($"matmul {w.Type}", t);
    }

    public void AddBias(ActivationBuffer y, WeightVector bias, int rows)
    {
        long t = Start(); inner.AddBias(y, bias, rows); Stop("add_bias", t);
    }

    public void Rope(ActivationBuffer x, ForwardBatch batch, int heads, RopeParameters rope)
    {
        long t = Start(); inner.Rope(x, batch, heads, rope); Stop("rope", t);
    }

    public void StoreKv(KvBlockPool pool, int layer, ForwardBatch batch, ActivationBuffer k, ActivationBuffer v)
    {
        long t = Start(); inner.StoreKv(pool, layer, batch, k, v); Stop("store_kv", t);
    }

    public void Attention(ActivationBuffer q, KvBlockPool pool, int layer, ForwardBatch batch, int heads, int kvHeads, int headDim, int valueDim, ActivationBuffer output)
    {
        long t = Start(); inner.Attention(q, pool, layer, batch, heads, kvHeads, headDim, valueDim, output); Stop("attention", t);
    }

    public void SwiGlu(ActivationBuffer gate, ActivationBuffer up, int length, ActivationBuffer y)
    {
        long t = Start(); inner.SwiGlu(gate, up, length, y); Stop("swiglu", t);
    }

    public void Add(ActivationBuffer x, ActivationBuffer y, int length)
    {
        long t = Start(); inner.Add(x, y, length); Stop("add", t);
    }

    public void Clear(ActivationBuffer x, int length)
    {
        long t = Start(); inner.Clear(x, length); Stop("clear", t);
    }

    public ExpertRouting CreateExpertRouting(ExpertRoutingShape shape) => inner.CreateExpertRouting(shape);

    public void RouteExperts(ActivationBuffer routerLogits, int rows, ExpertRouting routing, ActivationBuffer probabilities)
    {
        long t = Start(); inner.RouteExperts(routerLogits, rows, routing, probabilities); Stop("route_experts", t);
    }

    public void ExpertMatMul(ExpertMatrices w, ExpertRouting routing, ActivationBuffer x, int rows, bool inputPerSlot, ActivationBuffer y)
    {
        long t = Start(); inner.ExpertMatMul(w, routing, x, rows, inputPerSlot, y); Stop($"expert matmul {w[0].Type}", t);
    }

    public void CombineExperts(ActivationBuffer expertOutputs, ExpertRouting routing, int rows, int width, ActivationBuffer output)
    {
        long t = Start(); inner.CombineExperts(expertOutputs, routing, rows, width, output); Stop("combine_experts", t);
    }

    public void ReadKv(KvBlockPool pool, int layer, ReadOnlySpan<int> blockTable, int positions, Span<float> keys, Span<float> values) =>
        inner.ReadKv(pool, layer, blockTable, positions, keys, values);
    public void ReadRouting(ExpertRouting routing, int rows, Span<int> chosen, Span<float> weights) => inner.ReadRouting(routing, rows, chosen, weights);

    public void AddSigmoidGated(ActivationBuffer gateLogits, ActivationBuffer src, int rows, int width, ActivationBuffer dst)
    {
        long t = Start(); inner.AddSigmoidGated(gateLogits, src, rows, width, dst); Stop("add_sigmoid_gated", t);
    }

    public void Read(ActivationBuffer x, int offset, Span<float> dst)
    {
        long t = Start(); inner.Read(x, offset, dst); Stop("read", t);
    }

    public void Write(ActivationBuffer x, int offset, ReadOnlySpan<float> values)
    {
        long t = Start(); inner.Write(x, offset, values); Stop("write", t);
    }

    public void Copy(ActivationBuffer src, int srcOffset, ActivationBuffer dst, int dstOffset, int length)
    {
        long t = Start(); inner.Copy(src, srcOffset, dst, dstOffset, length); Stop("copy", t);
    }

    public void Dispose() { }
}
