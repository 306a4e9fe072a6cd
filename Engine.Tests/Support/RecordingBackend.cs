using Engine.Backends;
using Engine.Models;

namespace Engine.Tests.Support;

/// <summary>A backend that forwards every call to another and records which weight matrices were multiplied,
/// with how many rows: the observable trace of which weight bytes a forward pass reads.</summary>
internal sealed class RecordingBackend(IBackend inner) : IBackend
{
    public List<(WeightMatrix Weights, int Rows)> MatMuls { get; } = [];

    public string Name => "recording " + inner.Name;
    public ActivationBuffer Allocate(string name, int length) => inner.Allocate(name, length);
    public KvBlockPool CreateKvPool(KvPoolShape shape) => inner.CreateKvPool(shape);
    public void Embed(WeightMatrix table, ForwardBatch batch, ActivationBuffer x) => inner.Embed(table, batch, x);
    public void RmsNorm(ActivationBuffer x, WeightVector weight, float epsilon, int rows, ActivationBuffer y) => inner.RmsNorm(x, weight, epsilon, rows, y);

    public void MatMul(WeightMatrix w, ActivationBuffer x, int rows, ActivationBuffer y)
    {
        MatMuls.Add((w, rows));
        inner.MatMul(w, x, rows, y);
    }

    public void AddBias(ActivationBuffer y, WeightVector bias, int rows) => inner.AddBias(y, bias, rows);
    public void Rope(ActivationBuffer x, ForwardBatch batch, int heads, RopeParameters rope) => inner.Rope(x, batch, heads, rope);
    public void StoreKv(KvBlockPool pool, int layer, ForwardBatch batch, ActivationBuffer k, ActivationBuffer v) => inner.StoreKv(pool, layer, batch, k, v);
    public void Attention(ActivationBuffer q, KvBlockPool pool, int layer, ForwardBatch batch, int heads, int kvHeads, int headDim, int valueDim, ActivationBuffer output) =>
        inner.Attention(q, pool, layer, batch, heads, kvHeads, headDim, valueDim, output);
    public void SwiGlu(ActivationBuffer gate, ActivationBuffer up, int length, ActivationBuffer y) => inner.SwiGlu(gate, up, length, y);
    public void Add(ActivationBuffer x, ActivationBuffer y, int length) => inner.Add(x, y, length);
    public void Clear(ActivationBuffer x, int length) => inner.Clear(x, length);
    public ExpertRouting CreateExpertRouting(ExpertRoutingShape shape) => inner.CreateExpertRouting(shape);
    public void RouteExperts(ActivationBuffer routerLogits, int rows, ExpertRouting routing, ActivationBuffer probabilities) =>
        inner.RouteExperts(routerLogits, rows, routing, probabilities);

    /// <summary>Runs the host routing's expert-by-expert decomposition through this backend, so each expert's
    /// matmul is recorded (the inner backend must keep its routing in host memory, as the CPU does).</summary>
    public void ExpertMatMul(ExpertMatrices w, ExpertRouting routing, ActivationBuffer x, int rows, bool inputPerSlot, ActivationBuffer y) =>
        ((HostExpertRouting)routing).MatMul(this, w, x, rows, inputPerSlot, y);

    public void CombineExperts(ActivationBuffer expertOutputs, ExpertRouting routing, int rows, int width, ActivationBuffer output) =>
        inner.CombineExperts(expertOutputs, routing, rows, width, output);
    public void ReadKv(KvBlockPool pool, int layer, ReadOnlySpan<int> blockTable, int positions, Span<float> keys, Span<float> values) =>
        inner.ReadKv(pool, layer, blockTable, positions, keys, values);
    public void ReadRouting(ExpertRouting routing, int rows, Span<int> chosen, Span<float> weights) => inner.ReadRouting(routing, rows, chosen, weights);
    public void AddSigmoidGated(ActivationBuffer gateLogits, ActivationBuffer src, int rows, int width, ActivationBuffer dst) =>
        inner.AddSigmoidGated(gateLogits, src, rows, width, dst);
    public void Read(ActivationBuffer x, int offset, Span<float> dst) => inner.Read(x, offset, dst);
    public void Write(ActivationBuffer x, int offset, ReadOnlySpan<float> values) => inner.Write(x, offset, values);
    public void Copy(ActivationBuffer src, int srcOffset, ActivationBuffer dst, int dstOffset, int length) => inner.Copy(src, srcOffset, dst, dstOffset, length);
    public void Dispose() => inner.Dispose();
}
