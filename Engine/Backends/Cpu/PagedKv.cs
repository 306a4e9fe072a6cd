using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Engine.Models;
using Engine.Quantization;

namespace Engine.Backends.Cpu;

/// <summary>The CPU's paged KV pool. A block's memory is allocated the first time a token is stored in it (pinned, so
/// kernels address it by pointer), so the memory in use grows with the tokens held, up to the pool's size. Layout of a
/// block: for each layer, BlockTokens key rows, then BlockTokens value rows, each row in the pool's element type.</summary>
internal sealed unsafe class CpuKvPool : KvBlockPool
{
    byte[]?[] _blocks;
    long _allocated;

    public CpuKvPool(KvPoolShape shape) : base(shape)
    {
        _blocks = new byte[]?[shape.Blocks];
        KeyRowBytes = KvPoolShape.RowBytes(shape.KeyWidth, shape.Type);
        ValueRowBytes = KvPoolShape.RowBytes(shape.ValueWidth, shape.Type);
        LayerBytes = shape.BlockTokens * (KeyRowBytes + ValueRowBytes);
    }

    public long KeyRowBytes { get; }
    public long ValueRowBytes { get; }
    public long LayerBytes { get; }

    public override long Bytes => IsDisposed ? 0 : Interlocked.Read(ref _allocated) * Shape.BlockBytes;

    /// <summary>Where block `block`'s keys of `layer` start, allocating the block on first use.</summary>
    public byte* Keys(int block, int layer)
    {
        var memory = _blocks[block];
        if (memory is null)
        {
            memory = GC.AllocateArray<byte>(checked((int)Shape.BlockBytes), pinned: true);
            _blocks[block] = memory;
            Interlocked.Increment(ref _allocated);
        }
        return (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(memory)) + layer * LayerBytes;
    }

    /// <summary>Block `block`'s keys of `layer`, or null when nothing was ever stored in the block.</summary>
    public byte* KeysIfAllocated(int block, int layer)
    {
        var memory = _blocks[block];
        return memory is null ? null : (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(memory)) + layer * LayerBytes;
    }

    public override void CopyBlock(int from, int to)
    {
        ThrowIfDisposed();
        if (_blocks[from] is null) return; // never written: nothing to copy
        long length = Shape.BlockBytes;
        Buffer.MemoryCopy(Keys(from, 0), Keys(to, 0), length, length);
    }

    protected override void Release()
    {
        _blocks = [];
        Interlocked.Exchange(ref _allocated, 0);
    }

    /// <summary>The pool an operation was handed, checked once for that operation.</summary>
    public static CpuKvPool Usable(KvBlockPool pool)
    {
        pool.ThrowIfDisposed();
        return (CpuKvPool)pool;
    }

    /// <summary>Writes one row of `values` in the pool's element type.</summary>
    public static void WriteRow(ReadOnlySpan<float> values, KvElementType type, byte* dst)
    {
        switch (type)
        {
            case KvElementType.F32:
                values.CopyTo(new Span<float>(dst, values.Length));
                break;
            case KvElementType.F16:
                var halves = new Span<ushort>(dst, values.Length);
                for (int i = 0; i < values.Length; i++) halves[i] = Fp16.FromSingle(values[i]);
                break;
            case KvElementType.Q8_0:
                fixed (float* x = values) Q8_0Format.QuantizeActivations(x, (BlockQ8_0*)dst, values.Length);
                break;
        }
    }

    /// <summary>Reads `count` values starting at value `first` of a row in the pool's element type, as floats. For Q8_0,
    /// `first` and `count` are whole 32-value blocks (heads are).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ReadRow(byte* row, KvElementType type, int first, int count, float* dst)
    {
        switch (type)
        {
            case KvElementType.F32:
                Buffer.MemoryCopy((float*)row + first, dst, count * 4L, count * 4L);
                break;
            case KvElementType.F16:
            {
                var src = (ushort*)row + first;
                int i = 0;
                if (Vector256.IsHardwareAccelerated)
                    for (; i + 8 <= count; i += 8)
                        Fp16.ToSingle(Vector256.WidenLower(Vector128.Load(src + i).AsUInt16().ToVector256Unsafe()).AsUInt32()
                            ).Store(dst + i);
                for (; i < count; i++) dst[i] = Fp16.ToSingle(src[i]);
                break;
            }
            case KvElementType.Q8_0:
            {
                var blocks = (BlockQ8_0*)row + first / BlockQ8_0.QK;
                for (int b = 0; b < count / BlockQ8_0.QK; b++)
                {
                    float d = Fp16.ToSingle(blocks[b].D);
                    var q = blocks[b].Qs;
                    var o = dst + b * BlockQ8_0.QK;
                    for (int j = 0; j < BlockQ8_0.QK; j++) o[j] = d * q[j];
                }
                break;
            }
        }
    }
}

/// <summary>
/// Causal grouped-query attention over a paged KV pool, one block of keys at a time with a running (online) softmax,
/// as FlashAttention does: no row of scores longer than a block is ever formed, so a 4096-token prompt needs no
/// 4096 x 4096 matrix, and the keys and values of a block are converted to float once for every query head that reads
/// them. One work item is one row's query heads that share a KV head.
///
/// Batch invariance: a query's result is computed by one worker, in one fixed order (blocks by absolute position,
/// keys within a block in order, dot products with a fixed lane order), from its own query and its own sequence's
/// cache only. So a sequence's attention output is bit-identical whether it runs alone or beside other sequences,
/// in one prompt chunk or another.
/// </summary>
internal sealed unsafe class PagedAttention(WorkSplit split) : IRangeWork
{
    float[][] _scratch = [];
    float[] _queries = [], _output = [];
    CpuKvPool _pool = null!;
    ForwardBatch _batch = null!;
    int _layer, _heads, _kvHeads, _group, _headDim, _valueDim;
    float _scale;

    public void Run(float[] queries, CpuKvPool pool, int layer, ForwardBatch batch, int heads, int kvHeads, int headDim, int valueDim, float[] output)
    {
        var shape = pool.Shape;
        if (headDim * kvHeads != shape.KeyWidth || valueDim * kvHeads != shape.ValueWidth)
            throw new ArgumentException($"heads of {headDim}/{valueDim} x {kvHeads} do not match the pool's widths {shape.KeyWidth}/{shape.ValueWidth}");
        int group = heads / kvHeads;
        int scratchLength = shape.BlockTokens * (headDim + valueDim) + group * (shape.BlockTokens + valueDim + 2);
        if (_scratch.Length != split.Workers || _scratch[0].Length < scratchLength)
            _scratch = Enumerable.Range(0, split.Workers).Select(_ => GC.AllocateArray<float>(scratchLength, pinned: true)).ToArray();
        _queries = queries; _output = output; _pool = pool; _batch = batch; _layer = layer;
        _heads = heads; _kvHeads = kvHeads; _group = group; _headDim = headDim; _valueDim = valueDim;
        _scale = 1f / MathF.Sqrt(headDim);
        split.For(batch.Rows * kvHeads, 1, this);
        _queries = []; _output = []; _pool = null!; _batch = null!;
    }

    public void Execute(int begin, int end, int worker)
    {
        fixed (float* scratch = _scratch[worker]) fixed (float* q = _queries) fixed (float* o = _output)
            for (int item = begin; item < end; item++)
                Attend(item / _kvHeads, item % _kvHeads, q, o, scratch);
    }

    /// <summary>The `group` query heads of row `row` that read KV head `kvHead`.</summary>
    void Attend(int row, int kvHead, float* queries, float* output, float* scratch)
    {
        var shape = _pool.Shape;
        int blockTokens = shape.BlockTokens, headDim = _headDim, valueDim = _valueDim, group = _group;
        var type = shape.Type;
        float* keys = scratch;                                   // blockTokens x headDim
        float* values = keys + blockTokens * headDim;            // blockTokens x valueDim
        float* scores = values + blockTokens * valueDim;         // group x blockTokens
        float* acc = scores + group * blockTokens;               // group x valueDim
        float* max = acc + group * valueDim;                     // group
        float* sum = max + group;                                // group

        for (int g = 0; g < group; g++) { max[g] = float.NegativeInfinity; sum[g] = 0; }
        new Span<float>(acc, group * valueDim).Clear();

        int length = _batch.Positions[row] + 1;                  // causal: the row sees itself and everything before
        var table = _batch.BlockTableOfRow(row);
        int firstHead = kvHead * group;
        for (int b = 0, start = 0; start < length; b++, start += blockTokens)
        {
            int n = Math.Min(blockTokens, length - start);
            byte* keyRows = _pool.KeysIfAllocated(table[b], _layer);
            if (keyRows is null) throw new InvalidOperationException($"KV block {table[b]} is read before anything was stored in it");
            byte* valueRows = keyRows + blockTokens * _pool.KeyRowBytes;
            for (int j = 0; j < n; j++)
            {
                CpuKvPool.ReadRow(keyRows + j * _pool.KeyRowBytes, type, kvHead * headDim, headDim, keys + j * headDim);
                CpuKvPool.ReadRow(valueRows + j * _pool.ValueRowBytes, type, kvHead * valueDim, valueDim, values + j * valueDim);
            }
            for (int g = 0; g < group; g++)
            {
                float* query = queries + ((long)row * _heads + firstHead + g) * headDim;
                float* s = scores + g * blockTokens;
                float blockMax = float.NegativeInfinity;
                for (int j = 0; j < n; j++)
                {
                    s[j] = Dot(query, keys + j * headDim, headDim) * _scale;
                    blockMax = MathF.Max(blockMax, s[j]);
                }
                // Online softmax: rescale what was summed under the old maximum to the new one.
                float newMax = MathF.Max(max[g], blockMax);
                float correction = MathF.Exp(max[g] - newMax);
                float blockSum = 0;
                for (int j = 0; j < n; j++) { s[j] = MathF.Exp(s[j] - newMax); blockSum += s[j]; }
                sum[g] = sum[g] * correction + blockSum;
                max[g] = newMax;
                Accumulate(acc + g * valueDim, correction, s, values, n, valueDim);
            }
        }
        for (int g = 0; g < group; g++)
        {
            float* o = output + ((long)row * _heads + firstHead + g) * valueDim;
            float inverse = 1f / sum[g];
            for (int d = 0; d < valueDim; d++) o[d] = acc[g * valueDim + d] * inverse;
        }
    }

    /// <summary>a · b with a fixed order: 8-lane partial sums over the vector part, summed lane by lane, then the tail.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Dot(float* a, float* b, int length)
    {
        int i = 0;
        float result = 0;
        if (Vector256.IsHardwareAccelerated && length >= 8)
        {
            var s0 = Vector256<float>.Zero;
            var s1 = Vector256<float>.Zero;
            for (; i + 16 <= length; i += 16)
            {
                s0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), s0);
                s1 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), s1);
            }
            for (; i + 8 <= length; i += 8) s0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), s0);
            result = Vector256.Sum(s0 + s1);
        }
        for (; i < length; i++) result += a[i] * b[i];
        return result;
    }

    /// <summary>acc = acc * correction + Σ_j p[j] * values[j], in key order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Accumulate(float* acc, float correction, float* p, float* values, int n, int width)
    {
        int d = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; d + 8 <= width; d += 8)
            {
                var a = Vector256.Load(acc + d) * correction;
                for (int j = 0; j < n; j++) a = Vector256.FusedMultiplyAdd(Vector256.Create(p[j]), Vector256.Load(values + j * width + d), a);
                a.Store(acc + d);
            }
        for (; d < width; d++)
        {
            float a = acc[d] * correction;
            for (int j = 0; j < n; j++) a = MathF.FusedMultiplyAdd(p[j], values[j * width + d], a);
            acc[d] = a;
        }
    }
}
