using System.Numerics.Tensors;
using Engine.Models;

namespace Engine.Backends.Cpu;

/// <summary>The CPU backend: TensorPrimitives for float work, per-type row kernels for matmuls, and a
/// contiguous work split over the cores. Buffers are plain float arrays; scratch is allocated once.
/// As a resident-weights backend it repacks the Q4_K, Q6_K and Q4_0 matrices it is handed into 8-row groups, and
/// the F16 and BF16 ones on AVX-512 machines (unless told not to, or without AVX2, where the row kernels are the faster ones);
/// every other matrix is read from the map.</summary>
internal sealed class CpuBackend : IBackend, IResidentWeights
{
    sealed class Buffer(string name, float[] data) : ActivationBuffer(name, data.Length) { public readonly float[] Data = data; }

    readonly WorkSplit _split;
    readonly MatMulKernels _matmul;
    readonly bool _repackWeights;
    readonly RepackedWeights _repacked = new();
    readonly PagedAttention _attention;

    public string Name => "cpu";
    public int Threads => _split.Workers;

    /// <summary>Bytes of the repacked copies of weights this backend holds (0 when none were repacked).</summary>
    public long RepackedBytes => _repacked.Bytes;
    /// <summary>Number of matrices held repacked.</summary>
    public int RepackedMatrices => _repacked.Count;

    public CpuBackend(int threads = 0, bool repackWeights = true)
    {
        _split = new WorkSplit(threads > 0 ? threads : Environment.ProcessorCount);
        _matmul = new MatMulKernels(_split) { Repacked = _repacked };
        _repackWeights = repackWeights;
        _attention = new PagedAttention(_split);
    }

    /// <summary>Repacks the eligible matrices (a type with a repacked layout, whole groups of 8 rows; not a matrix
    /// only used for lookups):
    /// the 8-row kernels compute about twice as fast as the row kernels (docs/quantization.md).</summary>
    /// <summary>Whether <see cref="Upload"/> repacks anything (asked to, and the machine has the kernels).</summary>
    public bool RepacksWeights => _repackWeights && Quantization.Simd.Avx2Fma;

    public void Upload(WeightSet weights)
    {
        if (!_repackWeights || !Quantization.Simd.Avx2Fma) return;
        var lookupOnly = new HashSet<WeightMatrix>(weights.LookupOnly, ReferenceEqualityComparer.Instance);
        _repacked.Add(weights.AllMatrices.Where(m => !lookupOnly.Contains(m)), _split.Workers);
    }

    static float[] D(ActivationBuffer b) => ((Buffer)b).Data;

    // Pinned: a buffer never moves, so the kernels' vector loads see the same alignment in every step (a reduction's
    // order can depend on it), and a row's result is the same bits in every step.
    public ActivationBuffer Allocate(string name, int length)
    {
        Interlocked.Add(ref _allocatedFloats, length);
        return new Buffer(name, GC.AllocateArray<float>(length, pinned: true));
    }

    long _allocatedFloats;

    /// <summary>Bytes of the activation buffers handed out by <see cref="Allocate"/>.</summary>
    internal long ActivationBytes => Interlocked.Read(ref _allocatedFloats) * sizeof(float);
    /// <summary>Bytes of the matmul's quantized activations and attention's per-worker scratch, as grown so far.</summary>
    internal long KernelScratchBytes => _matmul.ActivationBufferBytes + _attention.ScratchBytes;

    public KvBlockPool CreateKvPool(KvPoolShape shape)
    {
        shape.Validate();
        return new CpuKvPool(shape);
    }

    public void Embed(WeightMatrix table, ForwardBatch batch, ActivationBuffer x)
    {
        var tokens = batch.Tokens;
        var dst = D(x);
        for (int t = 0; t < tokens.Length; t++)
            _matmul.DequantizeRow(table, tokens[t], dst.AsSpan(t * table.Cols, table.Cols));
    }

    public void RmsNorm(ActivationBuffer x, WeightVector weight, float epsilon, int rows, ActivationBuffer y)
    {
        var work = _rmsNorm;
        work.X = D(x); work.Y = D(y); work.Weight = weight.Values; work.Epsilon = epsilon;
        _split.For(rows, ElementwiseRows, work);
        work.X = work.Y = [];
    }

    /// <summary>Rows a worker takes at least in the row-wise operations (norms): a prompt's are split over the workers, a
    /// decode step's few rows run on the calling thread (a hand-off costs more than they do).</summary>
    const int ElementwiseRows = 16;

    /// <summary>Elements a worker takes at least in the element-wise operations (SwiGLU), in whole runs of 64.</summary>
    const int ElementwiseRun = 64, ElementwiseRuns = 1024;

    readonly RmsNormWork _rmsNorm = new();
    readonly SwiGluWork _swiGlu = new();

    sealed class RmsNormWork : IRangeWork
    {
        public float[] X = [], Y = [], Weight = [];
        public float Epsilon;

        public void Execute(int start, int end, int worker)
        {
            int width = Weight.Length;
            for (int r = start; r < end; r++)
                NormKernels.RmsNorm(X.AsSpan(r * width, width), Weight, Epsilon, Y.AsSpan(r * width, width));
        }
    }

    /// <summary>silu(gate) * up over runs [start, end) of 64 elements (the last one may be short). Each element's
    /// result does not depend on the range it is computed in: TensorPrimitives works lane by lane.</summary>
    sealed class SwiGluWork : IRangeWork
    {
        public float[] Gate = [], Up = [], Y = [];
        public int Length;

        public void Execute(int start, int end, int worker)
        {
            int from = start * ElementwiseRun, to = Math.Min(Length, end * ElementwiseRun);
            var g = Gate.AsSpan(from, to - from); var u = Up.AsSpan(from, to - from); var dst = Y.AsSpan(from, to - from);
            // silu(g) = g * sigmoid(g)
            TensorPrimitives.Sigmoid(g, dst);
            TensorPrimitives.Multiply(dst, g, dst);
            TensorPrimitives.Multiply(dst, u, dst);
        }
    }

    public void MatMul(WeightMatrix w, ActivationBuffer x, int rows, ActivationBuffer y) =>
        _matmul.MatMul(w, D(x), rows, D(y));

    public void AddBias(ActivationBuffer y, WeightVector bias, int rows)
    {
        var dst = D(y);
        for (int r = 0; r < rows; r++)
        {
            var row = dst.AsSpan(r * bias.Length, bias.Length);
            TensorPrimitives.Add(row, bias.Values, row);
        }
    }

    public void Rope(ActivationBuffer x, ForwardBatch batch, int heads, RopeParameters rope)
    {
        var data = D(x);
        var angles = new RopeAngles(rope);
        Span<float> cos = stackalloc float[rope.RotatedDims / 2];
        Span<float> sin = stackalloc float[rope.RotatedDims / 2];
        var positions = batch.Positions;
        for (int t = 0; t < positions.Length; t++)
        {
            angles.Compute(positions[t], cos, sin);
            for (int h = 0; h < heads; h++)
                RopeKernels.Rotate(data.AsSpan((t * heads + h) * rope.HeadDim, rope.HeadDim), cos, sin, rope.Style, rope.RotatedDims);
        }
    }

    public unsafe void StoreKv(KvBlockPool pool, int layer, ForwardBatch batch, ActivationBuffer k, ActivationBuffer v)
    {
        var p = CpuKvPool.Usable(pool);
        var shape = p.Shape;
        var slots = batch.Slots;
        for (int r = 0; r < slots.Length; r++)
        {
            int block = slots[r] / shape.BlockTokens, offset = slots[r] % shape.BlockTokens;
            if ((uint)block >= (uint)shape.Blocks) throw new ArgumentOutOfRangeException(nameof(batch), $"slot {slots[r]} is outside the pool's {shape.Blocks} blocks");
            byte* keys = p.Keys(block, layer);
            CpuKvPool.WriteRow(D(k).AsSpan(r * shape.KeyWidth, shape.KeyWidth), shape.Type, keys + offset * p.KeyRowBytes);
            CpuKvPool.WriteRow(D(v).AsSpan(r * shape.ValueWidth, shape.ValueWidth), shape.Type,
                keys + shape.BlockTokens * p.KeyRowBytes + offset * p.ValueRowBytes);
        }
    }

    public void Attention(ActivationBuffer q, KvBlockPool pool, int layer, ForwardBatch batch, int heads, int kvHeads, int headDim, int valueDim, ActivationBuffer output) =>
        _attention.Run(D(q), CpuKvPool.Usable(pool), layer, batch, heads, kvHeads, headDim, valueDim, D(output));

    /// <summary>Softmax in place with the maximum subtracted first (TensorPrimitives.SoftMax does not, and
    /// overflows for scores above ~88).</summary>
    public static void StableSoftmax(Span<float> x)
    {
        float max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, x);
        TensorPrimitives.Exp(x, x);
        float sum = TensorPrimitives.Sum(x);
        TensorPrimitives.Divide(x, sum, x);
    }

    public void SwiGlu(ActivationBuffer gate, ActivationBuffer up, int length, ActivationBuffer y)
    {
        var work = _swiGlu;
        work.Gate = D(gate); work.Up = D(up); work.Y = D(y); work.Length = length;
        _split.For((length + ElementwiseRun - 1) / ElementwiseRun, ElementwiseRuns, work);
        work.Gate = work.Up = work.Y = [];
    }

    public void Add(ActivationBuffer x, ActivationBuffer y, int length)
    {
        var a = D(x).AsSpan(0, length);
        TensorPrimitives.Add(a, D(y).AsSpan(0, length), a);
    }

    public void Clear(ActivationBuffer x, int length) => D(x).AsSpan(0, length).Clear();

    public ExpertRouting CreateExpertRouting(ExpertRoutingShape shape) => new HostExpertRouting(shape, this);

    public void RouteExperts(ActivationBuffer routerLogits, int rows, ExpertRouting routing, ActivationBuffer probabilities)
    {
        int n = rows * routing.Shape.Experts;
        ((HostExpertRouting)routing).Route(D(routerLogits).AsSpan(0, n), rows, D(probabilities).AsSpan(0, n));
    }

    public void ExpertMatMul(ExpertMatrices w, ExpertRouting routing, ActivationBuffer x, int rows, bool inputPerSlot, ActivationBuffer y) =>
        ((HostExpertRouting)routing).MatMul(this, w, x, rows, inputPerSlot, y);

    public void CombineExperts(ActivationBuffer expertOutputs, ExpertRouting routing, int rows, int width, ActivationBuffer output)
    {
        var r = (HostExpertRouting)routing;
        r.CheckRouted(rows);
        int k = r.Shape.ExpertsPerToken;
        var from = D(expertOutputs); var to = D(output);
        var weights = r.Weights;
        for (int t = 0; t < rows; t++)
        {
            var target = to.AsSpan(t * width, width);
            TensorPrimitives.Multiply(from.AsSpan(t * k * width, width), weights[t * k], target);
            // MultiplyAdd rounds the product before the sum (FusedMultiplyAdd would not), as ggml's mul then add.
            for (int slot = 1; slot < k; slot++)
                TensorPrimitives.MultiplyAdd(from.AsSpan((t * k + slot) * width, width), weights[t * k + slot], target, target);
        }
    }

    public unsafe void ReadKv(KvBlockPool pool, int layer, ReadOnlySpan<int> blockTable, int positions, Span<float> keys, Span<float> values)
    {
        var kv = CpuKvPool.Usable(pool);
        var shape = kv.Shape;
        int bt = shape.BlockTokens;
        if (keys.Length < positions * shape.KeyWidth || values.Length < positions * shape.ValueWidth || blockTable.Length * (long)bt < positions)
            throw new ArgumentException($"ReadKv of {positions} positions: the block table or the destinations are too short");
        fixed (float* k = keys, v = values)
            for (int position = 0; position < positions; position++)
            {
                int block = blockTable[position / bt], offset = position % bt;
                byte* layerStart = kv.KeysIfAllocated(block, layer);
                if (layerStart is null) throw new InvalidOperationException($"position {position} was never stored in the KV cache");
                CpuKvPool.ReadRow(layerStart + offset * kv.KeyRowBytes, shape.Type, 0, shape.KeyWidth, k + (long)position * shape.KeyWidth);
                CpuKvPool.ReadRow(layerStart + bt * kv.KeyRowBytes + offset * kv.ValueRowBytes, shape.Type, 0, shape.ValueWidth, v + (long)position * shape.ValueWidth);
            }
    }

    public void ReadRouting(ExpertRouting routing, int rows, Span<int> chosen, Span<float> weights) =>
        ((HostExpertRouting)routing).Read(rows, chosen, weights);

    public void AddSigmoidGated(ActivationBuffer gateLogits, ActivationBuffer src, int rows, int width, ActivationBuffer dst)
    {
        var gates = D(gateLogits); var from = D(src); var to = D(dst);
        for (int t = 0; t < rows; t++)
        {
            float gate = 1f / (1f + MathF.Exp(-gates[t]));
            var target = to.AsSpan(t * width, width);
            TensorPrimitives.MultiplyAdd(from.AsSpan(t * width, width), gate, target, target);
        }
    }

    public void Read(ActivationBuffer x, int offset, Span<float> dst) => D(x).AsSpan(offset, dst.Length).CopyTo(dst);

    public void Write(ActivationBuffer x, int offset, ReadOnlySpan<float> values) => values.CopyTo(D(x).AsSpan(offset, values.Length));

    public void Copy(ActivationBuffer src, int srcOffset, ActivationBuffer dst, int dstOffset, int length) =>
        D(src).AsSpan(srcOffset, length).CopyTo(D(dst).AsSpan(dstOffset, length));

    public void Dispose()
    {
        _split.Dispose();
        _repacked.Dispose();
    }
}
