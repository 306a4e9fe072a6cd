using Engine.Backends;
using RopeAngles = Engine.Backends.Cpu.RopeAngles;
using Engine.Gpu.Kernels;
using Engine.Models;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Gpu;

/// <summary>The ILGPU backend: activations, the KV cache and every weight live in device memory. Weights are
/// uploaded once (in their file type; each type's kernels decode them), kernels are compiled once in the
/// constructor, and a step copies only token ids, positions and MoE routing in and logits and router scores
/// out. Every kernel is enqueued on the accelerator's default stream; reading a result back waits for it.</summary>
public sealed class GpuBackend : IBackend, IResidentWeights, Engine.Benchmarking.IMemoryBandwidth
{
    // The device buffer holds at least one float (ILGPU cannot allocate none); Length is what was asked for.
    sealed class Buffer(string name, int length, MemoryBuffer1D<float, Stride1D.Dense> data) : ActivationBuffer(name, length)
    {
        public readonly MemoryBuffer1D<float, Stride1D.Dense> Data = data;
        public ArrayView<float> View => Data.View;
    }

    sealed class Cache : KvCache
    {
        public readonly MemoryBuffer1D<float, Stride1D.Dense>[] Keys, Values; // per layer: [context x width]
        public Cache(Accelerator accelerator, int layers, int ctx, int kw, int vw) : base(layers, ctx, kw, vw)
        {
            Keys = new MemoryBuffer1D<float, Stride1D.Dense>[layers];
            Values = new MemoryBuffer1D<float, Stride1D.Dense>[layers];
            for (int l = 0; l < layers; l++)
            {
                Keys[l] = accelerator.Allocate1D<float>((long)ctx * kw);
                Values[l] = accelerator.Allocate1D<float>((long)ctx * vw);
            }
        }
    }

    sealed record ResidentMatrix(IWeightKernels Kernels, DeviceMatrix Matrix);

    /// <summary>RoPE rates of one RopeParameters, on the device.</summary>
    sealed record RopeTable(MemoryBuffer1D<float, Stride1D.Dense> Rates, RopeKernels.RopeShape Shape);

    readonly GpuDevice _device;
    readonly Accelerator _accelerator;
    readonly WeightKernelRegistry _registry;
    readonly DeviceMemoryBudget _budget;
    readonly NormKernels _norm;
    readonly ElementwiseKernels _elementwise;
    readonly RopeKernels _rope;
    readonly AttentionKernels _attention;
    readonly DeviceStaging<int> _tokenIds, _rowIds;
    readonly DeviceStaging<float> _scales;
    // Keyed by identity: a model hands the same weight objects to every call.
    readonly Dictionary<WeightMatrix, ResidentMatrix> _matrices = new(ReferenceEqualityComparer.Instance);
    readonly Dictionary<WeightVector, MemoryBuffer1D<float, Stride1D.Dense>> _vectors = new(ReferenceEqualityComparer.Instance);
    readonly Dictionary<RopeParameters, RopeTable> _ropeTables = new(ReferenceEqualityComparer.Instance);
    readonly List<IDisposable> _allocations = [];
    readonly HashSet<int> _distinctRows = [];

    public string Name => $"gpu ({_device.Description})";
    public GpuDevice Device => _device;
    public DeviceMemoryBudget Memory => _budget;

    readonly bool _ownsDevice;

    /// <summary>A backend on `device`; it disposes the device with itself when it owns it.</summary>
    public GpuBackend(GpuDevice device, bool ownsDevice = true)
    {
        _device = device;
        _ownsDevice = ownsDevice;
        _accelerator = device.Accelerator;
        _registry = new WeightKernelRegistry(_accelerator);
        _budget = new DeviceMemoryBudget(_accelerator.MemorySize);
        var shape = new GroupShape(_accelerator);
        _norm = new NormKernels(_accelerator, shape);
        _elementwise = new ElementwiseKernels(_accelerator);
        _rope = new RopeKernels(_accelerator);
        _attention = new AttentionKernels(_accelerator, shape);
        _tokenIds = new DeviceStaging<int>(_accelerator, _budget, "token ids");
        _rowIds = new DeviceStaging<int>(_accelerator, _budget, "row ids");
        _scales = new DeviceStaging<float>(_accelerator, _budget, "row scales");
    }

    public WeightKernelRegistry Kernels => _registry;

    static ArrayView<float> V(ActivationBuffer b) => ((Buffer)b).View;

    public ActivationBuffer Allocate(string name, int length)
    {
        _budget.Reserve((long)length * sizeof(float), $"activation {name}");
        var data = _accelerator.Allocate1D<float>(Math.Max(1, length));
        data.MemSetToZero();
        _allocations.Add(data);
        return new Buffer(name, length, data);
    }

    public KvCache CreateKvCache(int layers, int contextLength, int keyWidth, int valueWidth)
    {
        _budget.Reserve((long)layers * contextLength * (keyWidth + valueWidth) * sizeof(float), $"the KV cache for {contextLength} tokens");
        var cache = new Cache(_accelerator, layers, contextLength, keyWidth, valueWidth);
        foreach (var buffer in cache.Keys.Concat(cache.Values)) _allocations.Add(buffer);
        return cache;
    }

    /// <summary>Checks that all weights fit beside what is already allocated, then uploads them.</summary>
    public void Upload(WeightSet weights)
    {
        var matrices = weights.Matrices.Where(m => !_matrices.ContainsKey(m)).ToList();
        long bytes = 0;
        foreach (var m in matrices) bytes += _registry.For(m).DeviceBytes(m.Rows, m.Cols); // also rejects unsupported types first
        foreach (var v in weights.Vectors) bytes += (long)v.Length * sizeof(float);
        if (bytes > _budget.Capacity - _budget.Used)
            throw new DeviceMemoryException($"the weights ({matrices.Count} matrices)", bytes, _budget.Used, _budget.Capacity);
        foreach (var m in matrices) Resident(m);
        foreach (var v in weights.Vectors) Resident(v);
    }

    ResidentMatrix Resident(WeightMatrix w)
    {
        if (_matrices.TryGetValue(w, out var resident)) return resident;
        var kernels = _registry.For(w);
        _budget.Reserve(kernels.DeviceBytes(w.Rows, w.Cols), w.Name);
        resident = new ResidentMatrix(kernels, kernels.Upload(w));
        _matrices.Add(w, resident);
        return resident;
    }

    ArrayView<float> Resident(WeightVector v)
    {
        if (_vectors.TryGetValue(v, out var buffer)) return buffer.View;
        _budget.Reserve((long)v.Length * sizeof(float), v.Name);
        buffer = _accelerator.Allocate1D(v.Values);
        _vectors.Add(v, buffer);
        return buffer.View;
    }

    public void Embed(WeightMatrix table, ReadOnlySpan<int> tokens, ActivationBuffer x)
    {
        foreach (int token in tokens)
            if ((uint)token >= (uint)table.Rows) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {token} is outside the vocabulary of {table.Rows}");
        var m = Resident(table);
        m.Kernels.DequantizeRows(m.Matrix, _tokenIds.Upload(tokens), tokens.Length, V(x));
    }

    public void RmsNorm(ActivationBuffer x, WeightVector weight, float epsilon, int rows, ActivationBuffer y) =>
        _norm.RmsNorm(V(x), Resident(weight), rows, weight.Length, epsilon, V(y));

    public void MatMul(WeightMatrix w, ActivationBuffer x, int rows, ActivationBuffer y)
    {
        var m = Resident(w);
        m.Kernels.MatMul(m.Matrix, V(x), rows, V(y));
    }

    public void AddBias(ActivationBuffer y, WeightVector bias, int rows) =>
        _elementwise.AddBias(V(y), Resident(bias), rows, bias.Length);

    public void Rope(ActivationBuffer x, int rows, int heads, int start, RopeParameters rope)
    {
        var table = RopeTableFor(rope, heads);
        _rope.Rope(V(x), rows, start, table.Rates.View, table.Shape with { Heads = heads });
    }

    RopeTable RopeTableFor(RopeParameters rope, int heads)
    {
        if (_ropeTables.TryGetValue(rope, out var table)) return table;
        var angles = new RopeAngles(rope);
        var rates = new float[rope.RotatedDims / 2];
        angles.AngleRates(rates);
        _budget.Reserve((long)rates.Length * sizeof(float), "RoPE rates");
        var buffer = _accelerator.Allocate1D(rates);
        table = new RopeTable(buffer, new RopeKernels.RopeShape(heads, rope.HeadDim, rates.Length, rope.Style == RopeStyle.NeoX ? 1 : 0, angles.MagnitudeScale));
        _ropeTables.Add(rope, table);
        return table;
    }

    public void StoreKv(KvCache cache, int layer, int start, int rows, ActivationBuffer k, ActivationBuffer v)
    {
        var c = (Cache)cache;
        ((Buffer)k).Data.View.SubView(0, (long)rows * c.KeyWidth).CopyTo(c.Keys[layer].View.SubView((long)start * c.KeyWidth, (long)rows * c.KeyWidth));
        ((Buffer)v).Data.View.SubView(0, (long)rows * c.ValueWidth).CopyTo(c.Values[layer].View.SubView((long)start * c.ValueWidth, (long)rows * c.ValueWidth));
    }

    public void Attention(ActivationBuffer q, KvCache cache, int layer, int start, int rows, int heads, int kvHeads, int headDim, int valueDim, ActivationBuffer output)
    {
        var c = (Cache)cache;
        var shape = new AttentionKernels.AttentionShape(start, heads, heads / kvHeads, headDim, valueDim, c.KeyWidth, c.ValueWidth, 1f / MathF.Sqrt(headDim));
        _attention.Attention(V(q), c.Keys[layer].View, c.Values[layer].View, rows, shape, V(output));
    }

    public void SwiGlu(ActivationBuffer gate, ActivationBuffer up, int length, ActivationBuffer y) =>
        _elementwise.SwiGlu(V(gate), V(up), length, V(y));

    public void Add(ActivationBuffer x, ActivationBuffer y, int length) => _elementwise.Add(V(x), V(y), length);

    public void Clear(ActivationBuffer x, int length)
    {
        if (length > 0) ((Buffer)x).Data.View.SubView(0, length).MemSetToZero();
    }

    public void GatherRows(ActivationBuffer src, ReadOnlySpan<int> rows, int width, ActivationBuffer dst)
    {
        if (rows.Length == 0) return;
        _elementwise.GatherRows(V(src), _rowIds.Upload(rows), rows.Length, width, V(dst));
    }

    public void ScatterAddRows(ActivationBuffer src, ReadOnlySpan<int> rows, ReadOnlySpan<float> scales, int width, ActivationBuffer dst)
    {
        if (scales.Length != rows.Length) throw new ArgumentException("one scale per row", nameof(scales));
        if (rows.Length == 0) return;
        // One thread per element and no atomics: two sources adding into one row would race.
        _distinctRows.Clear();
        foreach (int row in rows)
            if (!_distinctRows.Add(row)) throw new ArgumentException($"row {row} appears twice; the GPU backend scatters distinct rows only", nameof(rows));
        _elementwise.ScatterAddRows(V(src), _rowIds.Upload(rows), _scales.Upload(scales), rows.Length, width, V(dst));
    }

    public void Read(ActivationBuffer x, int offset, Span<float> dst)
    {
        if (dst.Length == 0) return;
        ((Buffer)x).Data.View.SubView(offset, dst.Length).CopyToCPU(_accelerator.DefaultStream, dst);
    }

    public void Write(ActivationBuffer x, int offset, ReadOnlySpan<float> values)
    {
        if (values.Length == 0) return;
        ((Buffer)x).Data.View.SubView(offset, values.Length).CopyFromCPU(_accelerator.DefaultStream, values);
    }

    public void Copy(ActivationBuffer src, int srcOffset, ActivationBuffer dst, int dstOffset, int length)
    {
        if (length == 0) return;
        ((Buffer)src).Data.View.SubView(srcOffset, length).CopyTo(((Buffer)dst).Data.View.SubView(dstOffset, length));
    }

    /// <summary>Device-to-device copies of a buffer far larger than any cache: each reads and writes every byte,
    /// so reads run at half the bytes moved (the figure a decode, which only reads weights, can reach).</summary>
    public double MeasureBytesPerSecond()
    {
        long bytes = Math.Min(512L << 20, (_budget.Capacity - _budget.Used) / 4) / sizeof(float) * sizeof(float);
        if (bytes < (1 << 20)) return 0;
        using var source = _accelerator.Allocate1D<float>(bytes / sizeof(float));
        using var target = _accelerator.Allocate1D<float>(bytes / sizeof(float));
        source.MemSetToZero();
        _accelerator.Synchronize();
        double best = 0;
        for (int pass = 0; pass < 5; pass++)
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            source.View.CopyTo(target.View);
            _accelerator.Synchronize();
            best = Math.Max(best, 2.0 * bytes / watch.Elapsed.TotalSeconds);
        }
        return best;
    }

    public void Dispose()
    {
        _accelerator.Synchronize();
        foreach (var m in _matrices.Values) m.Matrix.Dispose();
        foreach (var v in _vectors.Values) v.Dispose();
        foreach (var t in _ropeTables.Values) t.Rates.Dispose();
        foreach (var a in _allocations) a.Dispose();
        _tokenIds.Dispose(); _rowIds.Dispose(); _scales.Dispose();
        if (_ownsDevice) _device.Dispose();
    }
}
