using Engine.Backends;
using RopeAngles = Engine.Backends.Cpu.RopeAngles;
using Engine.Gpu.Kernels;
using Engine.Gpu.Kernels.Quantized;
using Engine.Models;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Gpu;

/// <summary>The ILGPU backend: activations, the KV cache, every weight and the MoE routing live in device memory.
/// Weights are uploaded once (in their file type; each type's kernels decode them; a layer's experts as one stack
/// indexed on the device), kernels are compiled once, and a step copies only the token ids in and the logits out
/// (<see cref="HostTransfers"/> counts every copy). Every kernel is enqueued on the accelerator's default stream;
/// reading a result back waits for it.</summary>
internal sealed class GpuBackend : IBackend, IResidentWeights, IHostTransfers, Engine.Benchmarking.IMemoryBandwidth, Engine.Benchmarking.ISynchronizingBackend
{
    // The device buffer holds at least one float (ILGPU cannot allocate none); Length is what was asked for.
    sealed class Buffer(string name, int length, MemoryBuffer1D<float, Stride1D.Dense> data) : ActivationBuffer(name, length)
    {
        public readonly MemoryBuffer1D<float, Stride1D.Dense> Data = data;
        public ArrayView<float> View => Data.View;
    }

    /// <summary>A matrix (or a layer's expert stack) on the device, with its GPTQ / AWQ order and zero points when it
    /// has them.</summary>
    sealed record ResidentMatrix(IWeightKernels Kernels, DeviceMatrix Matrix, DeviceQuantizedLinear? Linear = null);

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
    readonly ExpertKernels _experts;
    readonly KvStoreKernels _kvStore;
    // Compiled, and their scratch allocated, only for a model with GPTQ / AWQ layers.
    QuantizedLinearKernels? _quantizedLinearKernels;
    QuantizedLinearKernels QuantizedLinears => _quantizedLinearKernels ??= new QuantizedLinearKernels(_accelerator, _buffers, _budget);
    readonly DeviceBatch _batch;
    // Keyed by identity: a model hands the same weight objects to every call.
    readonly Dictionary<WeightMatrix, ResidentMatrix> _matrices = new(ReferenceEqualityComparer.Instance);
    readonly Dictionary<ExpertMatrices, ResidentMatrix> _stacks = new(ReferenceEqualityComparer.Instance);
    readonly Dictionary<WeightVector, MemoryBuffer1D<float, Stride1D.Dense>> _vectors = new(ReferenceEqualityComparer.Instance);
    readonly Dictionary<RopeParameters, RopeTable> _ropeTables = new(ReferenceEqualityComparer.Instance);
    readonly List<MemoryBuffer> _allocations = [];
    readonly List<GpuExpertRouting> _routings = [];
    readonly HashSet<GpuKvPool> _pools = new(ReferenceEqualityComparer.Instance);
    readonly DeviceBuffers _buffers;
    bool _disposed;

    /// <summary>Copies between host and device made by forward-pass operations since the backend was created
    /// (weight uploads and allocations aside): what a step costs in transfers.</summary>
    public HostTransferCount HostTransfers { get; } = new();

    public string Name => $"gpu ({_device.Description})";
    public GpuDevice Device => _device;
    public DeviceMemoryBudget Memory => _budget;

    /// <summary>Bytes of device memory in the buffers this backend holds now: weights, activations, KV caches, RoPE
    /// tables, expert routing and staging, each counted at its allocated size. A disposed cache takes its bytes off
    /// at once; after <see cref="Dispose"/> it is 0.</summary>
    public long DeviceBytesInUse => _buffers.BytesInUse;

    readonly bool _ownsDevice;

    /// <summary>A backend on `device`; it disposes the device with itself when it owns it.</summary>
    public GpuBackend(GpuDevice device, bool ownsDevice = true)
    {
        _device = device;
        _ownsDevice = ownsDevice;
        _accelerator = device.Accelerator;
        _registry = new WeightKernelRegistry(_accelerator);
        _budget = new DeviceMemoryBudget(_accelerator.MemorySize);
        _buffers = new DeviceBuffers(_accelerator);
        var shape = new GroupShape(_accelerator);
        _norm = new NormKernels(_accelerator, shape);
        _elementwise = new ElementwiseKernels(_accelerator);
        _rope = new RopeKernels(_accelerator);
        _attention = new AttentionKernels(_accelerator, shape);
        _experts = new ExpertKernels(_accelerator, shape);
        _kvStore = new KvStoreKernels(_accelerator);
        _batch = new DeviceBatch(new DeviceStaging<int>(_accelerator, _buffers, _budget, "batch positions and block tables"), HostTransfers);
    }

    public WeightKernelRegistry Kernels => _registry;

    static ArrayView<float> V(ActivationBuffer b) => ((Buffer)b).View;

    public ActivationBuffer Allocate(string name, int length)
    {
        _budget.Reserve((long)length * sizeof(float), $"activation {name}");
        var data = _buffers.Allocate<float>(Math.Max(1, length));
        data.MemSetToZero();
        _allocations.Add(data);
        return new Buffer(name, length, data);
    }

    /// <summary>A paged KV pool of `shape`, all of it allocated in device memory now (<see cref="GpuKvPool"/>). Throws
    /// a <see cref="DeviceMemoryException"/> naming the cache when it does not fit beside what the backend holds.</summary>
    public KvBlockPool CreateKvPool(KvPoolShape shape)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        shape.Validate();
        _budget.Reserve(PoolBytes(shape), $"the KV cache for {(long)shape.Blocks * shape.BlockTokens} tokens ({shape.Layers} layers, {shape.Type.ToString().ToLowerInvariant()})");
        var pool = new GpuKvPool(shape, Free);
        lock (_pools) _pools.Add(pool);
        try
        {
            pool.AllocateBuffers(_buffers);
        }
        catch
        {
            pool.Dispose(); // the device refused a buffer the budget allowed: free those it gave
            throw;
        }
        return pool;
    }

    /// <summary>KV pools made by <see cref="CreateKvPool"/> and not yet disposed.</summary>
    public int LivePools
    {
        get { lock (_pools) return _pools.Count; }
    }

    /// <summary>Frees a pool's buffers and its reservation (once: a pool calls it from its first Dispose, and this
    /// backend's Dispose calls that for every pool still live).</summary>
    void Free(GpuKvPool pool)
    {
        lock (_pools)
        {
            if (!_pools.Remove(pool)) return;
            // Kernels still queued may read or write the pool: let them finish before its memory goes back.
            _accelerator.Synchronize();
            foreach (var buffer in pool.Buffers) _buffers.Free(buffer);
        }
        _budget.Release(PoolBytes(pool.Shape));
    }

    static long PoolBytes(KvPoolShape shape) => shape.Blocks * shape.BlockBytes;

    /// <summary>Checks that all weights fit beside what is already allocated, then uploads them.</summary>
    public void Upload(WeightSet weights)
    {
        var matrices = weights.Matrices.Where(m => !_matrices.ContainsKey(m)).ToList();
        long bytes = 0;
        var stacks = weights.ExpertStacks.Where(s => !_stacks.ContainsKey(s)).ToList();
        foreach (var m in matrices) QuantizedLinearKernels.Check(m);
        foreach (var s in stacks) foreach (var m in s.Experts) QuantizedLinearKernels.Check(m);
        foreach (var m in matrices) bytes += _registry.For(m).DeviceBytes(m.Rows, m.Cols) + LinearBytes([m]); // also rejects unsupported types first
        foreach (var s in stacks) bytes += s.Count * _registry.For(s[0]).DeviceBytes(s.Rows, s.Cols) + LinearBytes(s.Experts);
        foreach (var v in weights.Vectors) bytes += (long)v.Length * sizeof(float);
        if (bytes > _budget.Capacity - _budget.Used)
            throw new DeviceMemoryException($"the weights ({matrices.Count} matrices, {stacks.Count} expert stacks)", bytes, _budget.Used, _budget.Capacity);
        foreach (var m in matrices) Resident(m);
        foreach (var s in stacks) Resident(s);
        foreach (var v in weights.Vectors) Resident(v);
    }

    /// <summary>Device bytes of the GPTQ / AWQ orders and zero points of these matrices (0 for other matrices).</summary>
    static long LinearBytes(IReadOnlyList<WeightMatrix> parts) =>
        parts.Any(QuantizedLinearKernels.Needed) ? QuantizedLinearKernels.DeviceBytes(parts) : 0;

    /// <summary>The GPTQ / AWQ extras of these matrices on the device, or null when they need none.</summary>
    DeviceQuantizedLinear? UploadLinear(string name, IReadOnlyList<WeightMatrix> parts)
    {
        if (!parts.Any(QuantizedLinearKernels.Needed)) return null;
        foreach (var m in parts) QuantizedLinearKernels.Check(m);
        _budget.Reserve(QuantizedLinearKernels.DeviceBytes(parts), $"{name}: GPTQ / AWQ input order and zero points");
        return QuantizedLinears.Upload(parts);
    }

    ResidentMatrix Resident(WeightMatrix w)
    {
        if (_matrices.TryGetValue(w, out var resident)) return resident;
        QuantizedLinearKernels.Check(w);
        var kernels = _registry.For(w);
        _budget.Reserve(kernels.DeviceBytes(w.Rows, w.Cols), w.Name);
        var linear = UploadLinear(w.Name, [w]);
        resident = new ResidentMatrix(kernels, _buffers.Uploaded(kernels.Upload(w)), linear);
        _matrices.Add(w, resident);
        return resident;
    }

    /// <summary>A layer's experts as one device matrix: expert e's rows follow expert e - 1's, so a kernel finds
    /// the expert a token chose from its index alone.</summary>
    ResidentMatrix Resident(ExpertMatrices w)
    {
        if (_stacks.TryGetValue(w, out var resident)) return resident;
        var kernels = _registry.For(w[0]);
        _budget.Reserve(w.Count * kernels.DeviceBytes(w.Rows, w.Cols), w.Name);
        var linear = UploadLinear(w.Name, w.Experts);
        resident = new ResidentMatrix(kernels, _buffers.Uploaded(kernels.UploadStack(w.Name, w.Experts)), linear);
        _stacks.Add(w, resident);
        return resident;
    }

    ArrayView<float> Resident(WeightVector v)
    {
        if (_vectors.TryGetValue(v, out var buffer)) return buffer.View;
        _budget.Reserve((long)v.Length * sizeof(float), v.Name);
        buffer = _buffers.Allocate(v.Values);
        _vectors.Add(v, buffer);
        return buffer.View;
    }

    public void Embed(WeightMatrix table, ForwardBatch batch, ActivationBuffer x)
    {
        foreach (int token in batch.Tokens)
            if ((uint)token >= (uint)table.Rows) throw new ArgumentOutOfRangeException(nameof(batch), $"token id {token} is outside the vocabulary of {table.Rows}");
        var m = Resident(table);
        m.Kernels.DequantizeRows(m.Matrix, _batch.Of(batch).Tokens, batch.Rows, V(x));
    }

    public void RmsNorm(ActivationBuffer x, WeightVector weight, float epsilon, int rows, ActivationBuffer y) =>
        _norm.RmsNorm(V(x), Resident(weight), rows, weight.Length, epsilon, V(y));

    public void MatMul(WeightMatrix w, ActivationBuffer x, int rows, ActivationBuffer y)
    {
        var m = Resident(w);
        if (m.Linear is { } linear) QuantizedLinears.MatMul(m.Kernels, m.Matrix, linear, V(x), rows, V(y));
        else m.Kernels.MatMul(m.Matrix, V(x), rows, V(y));
    }

    public void AddBias(ActivationBuffer y, WeightVector bias, int rows) =>
        _elementwise.AddBias(V(y), Resident(bias), rows, bias.Length);

    public void Rope(ActivationBuffer x, ForwardBatch batch, int heads, RopeParameters rope)
    {
        var rows = _batch.Of(batch);
        CheckLength(x, (long)batch.Rows * heads * rope.HeadDim, nameof(x));
        var table = RopeTableFor(rope, heads);
        _rope.Rope(V(x), batch.Rows, rows.Positions, table.Rates.View, table.Shape with { Heads = heads });
    }

    RopeTable RopeTableFor(RopeParameters rope, int heads)
    {
        if (_ropeTables.TryGetValue(rope, out var table)) return table;
        var angles = new RopeAngles(rope);
        var rates = new float[rope.RotatedDims / 2];
        angles.AngleRates(rates);
        _budget.Reserve((long)rates.Length * sizeof(float), "RoPE rates");
        var buffer = _buffers.Allocate(rates);
        table = new RopeTable(buffer, new RopeKernels.RopeShape(heads, rope.HeadDim, rates.Length, rope.Style == RopeStyle.NeoX ? 1 : 0, angles.MagnitudeScale));
        _ropeTables.Add(rope, table);
        return table;
    }

    public void StoreKv(KvBlockPool pool, int layer, ForwardBatch batch, ActivationBuffer k, ActivationBuffer v)
    {
        var p = GpuKvPool.Usable(pool);
        var shape = p.Shape;
        var rows = _batch.Of(batch);
        _batch.CheckFits(shape);
        CheckLength(k, (long)batch.Rows * shape.KeyWidth, nameof(k));
        CheckLength(v, (long)batch.Rows * shape.ValueWidth, nameof(v));
        switch (shape.Type)
        {
            case KvElementType.F32:
                _kvStore.Store(V(k), rows.Slots, batch.Rows, shape.KeyWidth, p.Keys<float>(layer));
                _kvStore.Store(V(v), rows.Slots, batch.Rows, shape.ValueWidth, p.Values<float>(layer));
                break;
            case KvElementType.F16:
                _kvStore.Store(V(k), rows.Slots, batch.Rows, shape.KeyWidth, p.Keys<ushort>(layer));
                _kvStore.Store(V(v), rows.Slots, batch.Rows, shape.ValueWidth, p.Values<ushort>(layer));
                break;
            case KvElementType.Q8_0:
                _kvStore.Store(V(k), rows.Slots, batch.Rows, shape.KeyWidth, p.Keys<byte>(layer));
                _kvStore.Store(V(v), rows.Slots, batch.Rows, shape.ValueWidth, p.Values<byte>(layer));
                break;
            default: throw new NotSupportedException($"KV element type {shape.Type}");
        }
    }

    public void Attention(ActivationBuffer q, KvBlockPool pool, int layer, ForwardBatch batch, int heads, int kvHeads, int headDim, int valueDim, ActivationBuffer output)
    {
        var p = GpuKvPool.Usable(pool);
        var shape = p.Shape;
        if (kvHeads <= 0 || heads % kvHeads != 0) throw new ArgumentException($"{heads} query heads cannot share {kvHeads} KV heads evenly", nameof(kvHeads));
        if (headDim * kvHeads != shape.KeyWidth || valueDim * kvHeads != shape.ValueWidth)
            throw new ArgumentException($"heads of {headDim}/{valueDim} x {kvHeads} do not match the pool's widths {shape.KeyWidth}/{shape.ValueWidth}");
        var rows = _batch.Of(batch);
        _batch.CheckFits(shape);
        CheckLength(q, (long)batch.Rows * heads * headDim, nameof(q));
        CheckLength(output, (long)batch.Rows * heads * valueDim, nameof(output));
        var s = new AttentionKernels.AttentionShape(heads, heads / kvHeads, headDim, valueDim, shape.KeyWidth, shape.ValueWidth,
            shape.BlockTokens, 1f / MathF.Sqrt(headDim));
        switch (shape.Type)
        {
            case KvElementType.F32: _attention.Attention(V(q), p.Keys<float>(layer), p.Values<float>(layer), rows, batch.Rows, s, V(output)); break;
            case KvElementType.F16: _attention.Attention(V(q), p.Keys<ushort>(layer), p.Values<ushort>(layer), rows, batch.Rows, s, V(output)); break;
            case KvElementType.Q8_0: _attention.Attention(V(q), p.Keys<byte>(layer), p.Values<byte>(layer), rows, batch.Rows, s, V(output)); break;
            default: throw new NotSupportedException($"KV element type {shape.Type}");
        }
    }

    public void SwiGlu(ActivationBuffer gate, ActivationBuffer up, int length, ActivationBuffer y) =>
        _elementwise.SwiGlu(V(gate), V(up), length, V(y));

    public void Add(ActivationBuffer x, ActivationBuffer y, int length) => _elementwise.Add(V(x), V(y), length);

    public void Clear(ActivationBuffer x, int length)
    {
        if (length > 0) ((Buffer)x).Data.View.SubView(0, length).MemSetToZero();
    }

    public ExpertRouting CreateExpertRouting(ExpertRoutingShape shape)
    {
        var routing = new GpuExpertRouting(_buffers, _budget, shape);
        _routings.Add(routing);
        return routing;
    }

    public void RouteExperts(ActivationBuffer routerLogits, int rows, ExpertRouting routing, ActivationBuffer probabilities)
    {
        var r = (GpuExpertRouting)routing;
        r.CheckRows(rows);
        _experts.Route(V(routerLogits), rows, V(probabilities), r.Chosen, r.Weights, r.Rule);
        // A prompt's expert matmuls read the slots sorted by expert; a decode step multiplies slot by slot.
        if (rows > 1) _experts.Sort(r.Chosen, rows * r.Shape.ExpertsPerToken, r.Shape.Experts, r.Counts, r.SortedSlots, r.SegmentExpert, r.Segments(rows));
        r.MarkRouted(rows);
    }

    public void ExpertMatMul(ExpertMatrices w, ExpertRouting routing, ActivationBuffer x, int rows, bool inputPerSlot, ActivationBuffer y)
    {
        var r = Routed(routing, rows);
        r.CheckExperts(w);
        int k = r.Shape.ExpertsPerToken, slotsPerInput = inputPerSlot ? 1 : k;
        // The kernels index the device buffers without bounds checks: check the sizes here.
        CheckLength(x, (long)rows * k / slotsPerInput * w.Cols, "x");
        CheckLength(y, (long)rows * k * w.Rows, "y");
        var m = Resident(w);
        if (rows == 1)
        {
            if (m.Linear is { } decodeLinear) QuantizedLinears.ExpertMatVec(m.Kernels, m.Matrix, decodeLinear, w.Rows, r.Chosen, k, V(x), slotsPerInput, V(y));
            else m.Kernels.ExpertMatVec(m.Matrix, w.Rows, r.Chosen, k, V(x), slotsPerInput, V(y));
            return;
        }
        int tokens = r.Segments(rows) * ExpertSegment.Tokens;
        _experts.Gather(V(x), r.SortedSlots, tokens, w.Cols, slotsPerInput, r.SortedInput);
        if (m.Linear is { } linear) QuantizedLinears.ExpertMatMul(m.Kernels, m.Matrix, linear, w.Rows, r.SegmentExpert, r.SortedInput, tokens, r.SortedOutput);
        else m.Kernels.ExpertMatMul(m.Matrix, w.Rows, r.SegmentExpert, r.SortedInput, tokens, r.SortedOutput);
        _experts.Scatter(r.SortedOutput, r.SortedSlots, tokens, w.Rows, V(y));
    }

    public void CombineExperts(ActivationBuffer expertOutputs, ExpertRouting routing, int rows, int width, ActivationBuffer output)
    {
        var r = Routed(routing, rows);
        CheckLength(expertOutputs, (long)rows * r.Shape.ExpertsPerToken * width, nameof(expertOutputs));
        CheckLength(output, (long)rows * width, nameof(output));
        _experts.Combine(V(expertOutputs), r.Weights, rows, r.Shape.ExpertsPerToken, width, V(output));
    }

    public void ReadKv(KvBlockPool pool, int layer, ReadOnlySpan<int> blockTable, int positions, Span<float> keys, Span<float> values)
    {
        var kv = GpuKvPool.Usable(pool);
        var shape = kv.Shape;
        int bt = shape.BlockTokens;
        if (keys.Length < positions * shape.KeyWidth || values.Length < positions * shape.ValueWidth || blockTable.Length * (long)bt < positions)
            throw new ArgumentException($"ReadKv of {positions} positions: the block table or the destinations are too short");
        // A block's positions are consecutive slots: one copy per block and tensor.
        for (int position = 0; position < positions;)
        {
            int offset = position % bt, count = Math.Min(bt - offset, positions - position);
            long slot = (long)blockTable[position / bt] * bt + offset;
            ReadRows(kv, layer, keysNotValues: true, slot, count, shape.KeyWidth, keys.Slice(position * shape.KeyWidth, count * shape.KeyWidth));
            ReadRows(kv, layer, keysNotValues: false, slot, count, shape.ValueWidth, values.Slice(position * shape.ValueWidth, count * shape.ValueWidth));
            position += count;
        }
    }

    /// <summary>`count` rows of `width` values from slot `slot` of a layer's keys or values, as floats: F32 copied
    /// straight into dst; F16 and Q8_0 copied as stored and converted by the CPU pool's row reader (one conversion for both
    /// backends).</summary>
    unsafe void ReadRows(GpuKvPool kv, int layer, bool keysNotValues, long slot, int count, int width, Span<float> dst)
    {
        var stream = _accelerator.DefaultStream;
        var type = kv.Shape.Type;
        if (type == KvElementType.F32)
            (keysNotValues ? kv.Keys<float>(layer) : kv.Values<float>(layer)).SubView(slot * width, (long)count * width).CopyToCPU(stream, dst);
        else
        {
            long rowBytes = KvPoolShape.RowBytes(width, type);
            var stored = new byte[count * rowBytes];
            var view = type == KvElementType.F16
                ? (keysNotValues ? kv.Keys<ushort>(layer) : kv.Values<ushort>(layer)).SubView(slot * width, (long)count * width).Cast<byte>()
                : (keysNotValues ? kv.Keys<byte>(layer) : kv.Values<byte>(layer)).SubView(slot * rowBytes, stored.Length);
            view.CopyToCPU(stream, stored.AsSpan());
            fixed (byte* rows = stored)
            fixed (float* values = dst)
                for (int r = 0; r < count; r++)
                    Engine.Backends.Cpu.CpuKvPool.ReadRow(rows + r * rowBytes, type, 0, width, values + (long)r * width);
        }
        HostTransfers.CountRead(dst.Length * sizeof(float));
    }

    public void ReadRouting(ExpertRouting routing, int rows, Span<int> chosen, Span<float> weights)
    {
        var r = Routed(routing, rows);
        int slots = rows * r.Shape.ExpertsPerToken;
        r.Chosen.SubView(0, slots).CopyToCPU(_accelerator.DefaultStream, chosen[..slots]);
        r.Weights.SubView(0, slots).CopyToCPU(_accelerator.DefaultStream, weights[..slots]);
        HostTransfers.CountRead(slots * (sizeof(int) + sizeof(float)));
    }

    static GpuExpertRouting Routed(ExpertRouting routing, int rows)
    {
        var r = (GpuExpertRouting)routing;
        r.CheckRouted(rows);
        return r;
    }

    public void AddSigmoidGated(ActivationBuffer gateLogits, ActivationBuffer src, int rows, int width, ActivationBuffer dst)
    {
        CheckLength(gateLogits, rows, nameof(gateLogits));
        CheckLength(src, (long)rows * width, nameof(src));
        CheckLength(dst, (long)rows * width, nameof(dst));
        _experts.AddSigmoidGated(V(gateLogits), V(src), rows, width, V(dst));
    }

    static void CheckLength(ActivationBuffer buffer, long needed, string parameter)
    {
        if (buffer.Length < needed)
            throw new ArgumentException($"{buffer.Name} holds {buffer.Length} values, {needed} needed", parameter);
    }

    /// <summary>Waits for every kernel and copy queued so far (per-operation timing).</summary>
    public void Synchronize()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _accelerator.Synchronize();
    }

    public void Read(ActivationBuffer x, int offset, Span<float> dst)
    {
        if (dst.Length == 0) return;
        ((Buffer)x).Data.View.SubView(offset, dst.Length).CopyToCPU(_accelerator.DefaultStream, dst);
        HostTransfers.CountRead(dst.Length * sizeof(float));
    }

    public void Write(ActivationBuffer x, int offset, ReadOnlySpan<float> values)
    {
        if (values.Length == 0) return;
        ((Buffer)x).Data.View.SubView(offset, values.Length).CopyFromCPU(_accelerator.DefaultStream, values);
        HostTransfers.CountUpload(values.Length * sizeof(float));
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

    /// <summary>Frees every device buffer this backend holds, the KV pools not yet disposed included (disposing
    /// one of those afterwards does nothing), then the device when the backend owns it. Only the first call does
    /// anything.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _accelerator.Synchronize();
        GpuKvPool[] live;
        lock (_pools) live = [.. _pools];
        foreach (var pool in live) pool.Dispose();
        foreach (var m in _matrices.Values.Concat(_stacks.Values))
        {
            _buffers.Free(m.Matrix);
            if (m.Linear is { } linear) QuantizedLinears.Free(linear);
        }
        _quantizedLinearKernels?.Dispose();
        foreach (var r in _routings) r.Dispose();
        foreach (var v in _vectors.Values) _buffers.Free(v);
        foreach (var t in _ropeTables.Values) _buffers.Free(t.Rates);
        foreach (var a in _allocations) _buffers.Free(a);
        _matrices.Clear(); _stacks.Clear(); _routings.Clear(); _vectors.Clear(); _ropeTables.Clear(); _allocations.Clear();
        _batch.Dispose();
        if (_ownsDevice) _device.Dispose();
    }
}
