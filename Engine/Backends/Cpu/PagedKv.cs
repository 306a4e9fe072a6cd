using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
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
                // Keys and values are nearly always normal halves: the three-operation rebias converts them exactly.
                if (System.Runtime.Intrinsics.X86.Avx2.IsSupported)
                    for (; i + 16 <= count; i += 16)
                    {
                        Fp16.Load16Avx2(src + i, out var lo, out var hi);
                        lo.Store(dst + i);
                        hi.Store(dst + i + 8);
                    }
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
                    int j = 0;
                    if (System.Runtime.Intrinsics.X86.Avx2.IsSupported)
                        for (var scale = Vector256.Create(d); j + 8 <= BlockQ8_0.QK; j += 8)
                            (Vector256.ConvertToSingle(System.Runtime.Intrinsics.X86.Avx2.ConvertToVector256Int32(q + j)) * scale).Store(o + j);
                    for (; j < BlockQ8_0.QK; j++) o[j] = d * q[j];
                }
                break;
            }
        }
    }
}

/// <summary>
/// Causal grouped-query attention over a paged KV pool, one block of keys at a time with a running (online) softmax,
/// as FlashAttention does: no row of scores longer than a block is ever formed, so a 4096-token prompt needs no
/// 4096 x 4096 matrix. One work item is a tile of up to <see cref="TileRows"/> consecutive rows of one sequence and
/// one KV head: each block's keys and values are converted to float once for every query head of every row of the
/// tile that reads them (a prompt chunk reads each block for 8 rows x the group's heads, not once per row), and two
/// heads of a row go through the scores and the weighted sum of values together, so each key and value vector is
/// loaded once for both.
///
/// Batch invariance: every row's result is computed in one fixed order (blocks by absolute position, keys within a
/// block in order, dot products with a fixed lane order, the exponentials of a block's scores together) from its own
/// query and its own sequence's cache only; the tile only shares the exactly converted keys and values, and a head
/// paired with another computes exactly what it computes alone. So a
/// sequence's attention output is bit-identical whether it runs alone or beside other sequences, in one prompt chunk
/// or another, first in a tile or last.
/// </summary>
internal sealed unsafe class PagedAttention(WorkSplit split) : IRangeWork
{
    /// <summary>Rows of one sequence that share the conversion of each block.</summary>
    public const int TileRows = 8;

    float[][] _scratch = [];
    int[] _tiles = [];
    int _tileCount;
    float[] _queries = [], _output = [];
    CpuKvPool _pool = null!;
    ForwardBatch _batch = null!;
    int _layer, _heads, _kvHeads, _group, _headDim, _valueDim;
    float _scale;

    /// <summary>Floats of one worker's scratch: a block's keys and values as floats, and a tile's scores and outputs.</summary>
    public static int ScratchFloats(int blockTokens, int headDim, int valueDim, int group) =>
        blockTokens * (headDim + valueDim) + TileRows * group * (blockTokens + valueDim + 2);

    /// <summary>Bytes of the workers' scratch allocated so far.</summary>
    public long ScratchBytes => _scratch.Sum(s => (long)s.Length * sizeof(float));

    public void Run(float[] queries, CpuKvPool pool, int layer, ForwardBatch batch, int heads, int kvHeads, int headDim, int valueDim, float[] output)
    {
        var shape = pool.Shape;
        if (headDim * kvHeads != shape.KeyWidth || valueDim * kvHeads != shape.ValueWidth)
            throw new ArgumentException($"heads of {headDim}/{valueDim} x {kvHeads} do not match the pool's widths {shape.KeyWidth}/{shape.ValueWidth}");
        int group = heads / kvHeads;
        int scratchLength = ScratchFloats(shape.BlockTokens, headDim, valueDim, group);
        if (_scratch.Length != split.Workers || _scratch[0].Length < scratchLength)
            _scratch = Enumerable.Range(0, split.Workers).Select(_ => GC.AllocateArray<float>(scratchLength, pinned: true)).ToArray();

        // Tiles: (first row, rows), each within one sequence's consecutive rows.
        int tiles = 0;
        var first = batch.SequenceFirstRow;
        var count = batch.SequenceRowCount;
        for (int seq = 0; seq < batch.Sequences; seq++) tiles += (count[seq] + TileRows - 1) / TileRows;
        if (_tiles.Length < 2 * tiles) _tiles = new int[Math.Max(2 * tiles, 2 * _tiles.Length)];
        int t = 0;
        for (int seq = 0; seq < batch.Sequences; seq++)
            for (int r = 0; r < count[seq]; r += TileRows)
            {
                _tiles[2 * t] = first[seq] + r;
                _tiles[2 * t + 1] = Math.Min(TileRows, count[seq] - r);
                t++;
            }
        _tileCount = tiles;

        _queries = queries; _output = output; _pool = pool; _batch = batch; _layer = layer;
        _heads = heads; _kvHeads = kvHeads; _group = group; _headDim = headDim; _valueDim = valueDim;
        _scale = 1f / MathF.Sqrt(headDim);
        split.For(tiles * kvHeads, 1, this);
        _queries = []; _output = []; _pool = null!; _batch = null!;
    }

    public void Execute(int begin, int end, int worker)
    {
        fixed (float* scratch = _scratch[worker]) fixed (float* q = _queries) fixed (float* o = _output)
            for (int item = begin; item < end; item++)
            {
                int tile = item / _kvHeads;
                Attend(_tiles[2 * tile], _tiles[2 * tile + 1], item % _kvHeads, q, o, scratch);
            }
    }

    /// <summary>The `group` query heads that read KV head `kvHead`, for rows [firstRow, firstRow + rows) of one sequence.</summary>
    void Attend(int firstRow, int rows, int kvHead, float* queries, float* output, float* scratch)
    {
        var shape = _pool.Shape;
        int blockTokens = shape.BlockTokens, headDim = _headDim, valueDim = _valueDim, group = _group;
        int heads = rows * group;                                // the tile's (row, head) pairs, row-major
        var type = shape.Type;
        float* keys = scratch;                                   // blockTokens x headDim
        float* values = keys + blockTokens * headDim;            // blockTokens x valueDim
        float* scores = values + blockTokens * valueDim;         // heads x blockTokens
        float* acc = scores + heads * blockTokens;               // heads x valueDim
        float* max = acc + heads * valueDim;                     // heads
        float* sum = max + heads;                                // heads

        for (int h = 0; h < heads; h++) { max[h] = float.NegativeInfinity; sum[h] = 0; }
        new Span<float>(acc, heads * valueDim).Clear();

        // Rows of a sequence come in position order: the last row of the tile sees furthest.
        int longest = _batch.Positions[firstRow + rows - 1] + 1;
        var table = _batch.BlockTableOfRow(firstRow);
        int firstHead = kvHead * group;
        for (int b = 0, start = 0; start < longest; b++, start += blockTokens)
        {
            int n = Math.Min(blockTokens, longest - start);
            byte* keyRows = _pool.KeysIfAllocated(table[b], _layer);
            if (keyRows is null) throw new InvalidOperationException($"KV block {table[b]} is read before anything was stored in it");
            byte* valueRows = keyRows + blockTokens * _pool.KeyRowBytes;
            for (int j = 0; j < n; j++)
            {
                CpuKvPool.ReadRow(keyRows + j * _pool.KeyRowBytes, type, kvHead * headDim, headDim, keys + j * headDim);
                CpuKvPool.ReadRow(valueRows + j * _pool.ValueRowBytes, type, kvHead * valueDim, valueDim, values + j * valueDim);
            }
            for (int r = 0; r < rows; r++)
            {
                int row = firstRow + r;
                int seen = Math.Min(n, _batch.Positions[row] + 1 - start); // causal: the row sees itself and what is before
                if (seen <= 0) continue;
                for (int g = 0; g < group;)
                {
                    int h = r * group + g;
                    float* query = queries + ((long)row * _heads + firstHead + g) * headDim;
                    float* s = scores + h * blockTokens;
                    if (g + 1 < group && Avx.IsSupported && headDim % 8 == 0)
                    {
                        // Two heads of the row (their queries are adjacent) read each key and each value once for both;
                        // every (head, key) product and sum is the one a head alone computes.
                        float* s1 = s + blockTokens;
                        ScoreTwo(query, query + headDim, keys, s, s1, seen, headDim, out float max0, out float max1);
                        float correction0 = Normalize(h, max0, s, seen, max, sum);
                        float correction1 = Normalize(h + 1, max1, s1, seen, max, sum);
                        AccumulateTwo(acc + h * valueDim, correction0, s, acc + (h + 1) * valueDim, correction1, s1, values, seen, valueDim);
                        g += 2;
                    }
                    else
                    {
                        float blockMax = Score(query, keys, s, seen, headDim);
                        float correction = Normalize(h, blockMax, s, seen, max, sum);
                        Accumulate(acc + h * valueDim, correction, s, values, seen, valueDim, 0);
                        g++;
                    }
                }
            }
        }
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < group; g++)
            {
                int h = r * group + g;
                float* o = output + ((long)(firstRow + r) * _heads + firstHead + g) * valueDim;
                float inverse = 1f / sum[h];
                for (int d = 0; d < valueDim; d++) o[d] = acc[h * valueDim + d] * inverse;
            }
    }

    /// <summary>s[j] = q · keys[j] * scale for the `seen` keys of a block; returns their maximum. Eight keys at a time
    /// share each load of the query and one horizontal reduction (a row's keys fall in the same groups of eight alone or
    /// batched: the grouping depends only on its position). The maximum is kept in lanes: a maximum is the same value in
    /// any order.</summary>
    float Score(float* query, float* keys, float* s, int seen, int headDim)
    {
        float blockMax = float.NegativeInfinity;
        int j = 0;
        if (Avx.IsSupported && headDim % 8 == 0 && seen >= 8)
        {
            var laneMax = Vector256.Create(float.NegativeInfinity);
            for (; j + 8 <= seen; j += 8)
            {
                var eight = Dot8(query, keys + j * headDim, headDim) * _scale;
                eight.Store(s + j);
                laneMax = Avx.Max(laneMax, eight);
            }
            blockMax = MaxOf(laneMax);
        }
        for (; j < seen; j++)
        {
            s[j] = Dot(query, keys + j * headDim, headDim) * _scale;
            blockMax = MathF.Max(blockMax, s[j]);
        }
        return blockMax;
    }

    /// <summary><see cref="Score"/> for two queries at once: each group of eight keys is loaded once for both (the
    /// scores are bit for bit those of two calls).</summary>
    void ScoreTwo(float* query0, float* query1, float* keys, float* s0, float* s1, int seen, int headDim, out float max0, out float max1)
    {
        max0 = max1 = float.NegativeInfinity;
        int j = 0;
        if (seen >= 8)
        {
            var laneMax0 = Vector256.Create(float.NegativeInfinity);
            var laneMax1 = laneMax0;
            for (; j + 8 <= seen; j += 8)
            {
                Dot8Two(query0, query1, keys + j * headDim, headDim, out var eight0, out var eight1);
                eight0 *= _scale; eight1 *= _scale;
                eight0.Store(s0 + j); eight1.Store(s1 + j);
                laneMax0 = Avx.Max(laneMax0, eight0);
                laneMax1 = Avx.Max(laneMax1, eight1);
            }
            max0 = MaxOf(laneMax0);
            max1 = MaxOf(laneMax1);
        }
        for (; j < seen; j++)
        {
            s0[j] = Dot(query0, keys + j * headDim, headDim) * _scale;
            s1[j] = Dot(query1, keys + j * headDim, headDim) * _scale;
            max0 = MathF.Max(max0, s0[j]);
            max1 = MathF.Max(max1, s1[j]);
        }
    }

    /// <summary>Online softmax for head h over one block: the scores become exp(s - m) for the new running maximum m,
    /// the running sum is rescaled to m and the block's exponentials added. Returns the factor that rescales what
    /// was accumulated under the old maximum.</summary>
    static float Normalize(int h, float blockMax, float* s, int seen, float* max, float* sum)
    {
        float newMax = MathF.Max(max[h], blockMax);
        float correction = MathF.Exp(max[h] - newMax);
        // One pass: subtract, exponentiate, store and sum, in chunks fixed by `seen` alone (so by the row's position).
        int k = 0;
        float blockSum = 0;
        if (Vector512.IsHardwareAccelerated && seen >= 16)
        {
            var shift = Vector512.Create(newMax);
            var total = Vector512<float>.Zero;
            for (; k + 16 <= seen; k += 16)
            {
                var e = Vector512.Exp(Vector512.Load(s + k) - shift);
                e.Store(s + k);
                total += e;
            }
            blockSum = Vector512.Sum(total);
        }
        if (Vector256.IsHardwareAccelerated && k + 8 <= seen)
        {
            var shift = Vector256.Create(newMax);
            var total = Vector256<float>.Zero;
            for (; k + 8 <= seen; k += 8)
            {
                var e = Vector256.Exp(Vector256.Load(s + k) - shift);
                e.Store(s + k);
                total += e;
            }
            blockSum += Vector256.Sum(total);
        }
        for (; k < seen; k++)
        {
            float e = MathF.Exp(s[k] - newMax);
            s[k] = e;
            blockSum += e;
        }
        sum[h] = sum[h] * correction + blockSum;
        max[h] = newMax;
        return correction;
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

    /// <summary>The largest of the eight lanes of `v` (a tree of max instructions).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float MaxOf(Vector256<float> v)
    {
        var four = Sse.Max(v.GetLower(), v.GetUpper());
        var two = Sse.Max(four, Sse.MoveHighToLow(four, four));
        return Sse.MaxScalar(two, Sse.Shuffle(two, two, 1)).ToScalar();
    }

    /// <summary>q · keys[j] for the eight keys (rows of `length`) at `keys`: one accumulator per key, each summed over
    /// the vector lanes of the whole row, then the eight reduced together by horizontal adds.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Dot8(float* q, float* keys, int length)
    {
        if (Vector512.IsHardwareAccelerated && length % 16 == 0)
        {
            // Sixteen lanes per fused multiply-add where the CPU has them (twice the throughput on a full-width AVX-512
            // core); each accumulator's halves are added before the same reduction.
            Vector512<float> w0 = default, w1 = default, w2 = default, w3 = default, w4 = default, w5 = default, w6 = default, w7 = default;
            for (int i = 0; i < length; i += 16)
            {
                var x = Vector512.Load(q + i);
                w0 = Vector512.FusedMultiplyAdd(x, Vector512.Load(keys + i), w0);
                w1 = Vector512.FusedMultiplyAdd(x, Vector512.Load(keys + length + i), w1);
                w2 = Vector512.FusedMultiplyAdd(x, Vector512.Load(keys + 2 * length + i), w2);
                w3 = Vector512.FusedMultiplyAdd(x, Vector512.Load(keys + 3 * length + i), w3);
                w4 = Vector512.FusedMultiplyAdd(x, Vector512.Load(keys + 4 * length + i), w4);
                w5 = Vector512.FusedMultiplyAdd(x, Vector512.Load(keys + 5 * length + i), w5);
                w6 = Vector512.FusedMultiplyAdd(x, Vector512.Load(keys + 6 * length + i), w6);
                w7 = Vector512.FusedMultiplyAdd(x, Vector512.Load(keys + 7 * length + i), w7);
            }
            return Reduce8(Fold(w0), Fold(w1), Fold(w2), Fold(w3), Fold(w4), Fold(w5), Fold(w6), Fold(w7));
        }
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        for (int i = 0; i < length; i += 8)
        {
            var x = Vector256.Load(q + i);
            a0 = Vector256.FusedMultiplyAdd(x, Vector256.Load(keys + i), a0);
            a1 = Vector256.FusedMultiplyAdd(x, Vector256.Load(keys + length + i), a1);
            a2 = Vector256.FusedMultiplyAdd(x, Vector256.Load(keys + 2 * length + i), a2);
            a3 = Vector256.FusedMultiplyAdd(x, Vector256.Load(keys + 3 * length + i), a3);
            a4 = Vector256.FusedMultiplyAdd(x, Vector256.Load(keys + 4 * length + i), a4);
            a5 = Vector256.FusedMultiplyAdd(x, Vector256.Load(keys + 5 * length + i), a5);
            a6 = Vector256.FusedMultiplyAdd(x, Vector256.Load(keys + 6 * length + i), a6);
            a7 = Vector256.FusedMultiplyAdd(x, Vector256.Load(keys + 7 * length + i), a7);
        }
        return Reduce8(a0, a1, a2, a3, a4, a5, a6, a7);
    }

    /// <summary>A 16-lane accumulator as 8 lanes: lane i + lane i + 8.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Fold(Vector512<float> v) => v.GetLower() + v.GetUpper();

    /// <summary>The lane sums of eight accumulators, as one vector (lane k: the sum of a_k's lanes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Reduce8(Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3,
        Vector256<float> a4, Vector256<float> a5, Vector256<float> a6, Vector256<float> a7)
    {
        // [a0 a1 a2 a3 | a0 a1 a2 a3] partial sums of the low and high lane halves, then the halves added.
        var low = Avx.HorizontalAdd(Avx.HorizontalAdd(a0, a1), Avx.HorizontalAdd(a2, a3));
        var high = Avx.HorizontalAdd(Avx.HorizontalAdd(a4, a5), Avx.HorizontalAdd(a6, a7));
        return Avx.Permute2x128(low, high, 0x20) + Avx.Permute2x128(low, high, 0x31);
    }

    /// <summary><see cref="Dot8"/> for two queries: each key vector is loaded once and multiplied into both queries'
    /// accumulators, which are summed exactly as Dot8 sums them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Dot8Two(float* q0, float* q1, float* keys, int length, out Vector256<float> result0, out Vector256<float> result1)
    {
        if (Vector512.IsHardwareAccelerated && length % 16 == 0)
        {
            Vector512<float> w0 = default, w1 = default, w2 = default, w3 = default, w4 = default, w5 = default, w6 = default, w7 = default;
            Vector512<float> z0 = default, z1 = default, z2 = default, z3 = default, z4 = default, z5 = default, z6 = default, z7 = default;
            for (int i = 0; i < length; i += 16)
            {
                var x = Vector512.Load(q0 + i);
                var y = Vector512.Load(q1 + i);
                var k = Vector512.Load(keys + i);
                w0 = Vector512.FusedMultiplyAdd(x, k, w0); z0 = Vector512.FusedMultiplyAdd(y, k, z0);
                k = Vector512.Load(keys + length + i);
                w1 = Vector512.FusedMultiplyAdd(x, k, w1); z1 = Vector512.FusedMultiplyAdd(y, k, z1);
                k = Vector512.Load(keys + 2 * length + i);
                w2 = Vector512.FusedMultiplyAdd(x, k, w2); z2 = Vector512.FusedMultiplyAdd(y, k, z2);
                k = Vector512.Load(keys + 3 * length + i);
                w3 = Vector512.FusedMultiplyAdd(x, k, w3); z3 = Vector512.FusedMultiplyAdd(y, k, z3);
                k = Vector512.Load(keys + 4 * length + i);
                w4 = Vector512.FusedMultiplyAdd(x, k, w4); z4 = Vector512.FusedMultiplyAdd(y, k, z4);
                k = Vector512.Load(keys + 5 * length + i);
                w5 = Vector512.FusedMultiplyAdd(x, k, w5); z5 = Vector512.FusedMultiplyAdd(y, k, z5);
                k = Vector512.Load(keys + 6 * length + i);
                w6 = Vector512.FusedMultiplyAdd(x, k, w6); z6 = Vector512.FusedMultiplyAdd(y, k, z6);
                k = Vector512.Load(keys + 7 * length + i);
                w7 = Vector512.FusedMultiplyAdd(x, k, w7); z7 = Vector512.FusedMultiplyAdd(y, k, z7);
            }
            result0 = Reduce8(Fold(w0), Fold(w1), Fold(w2), Fold(w3), Fold(w4), Fold(w5), Fold(w6), Fold(w7));
            result1 = Reduce8(Fold(z0), Fold(z1), Fold(z2), Fold(z3), Fold(z4), Fold(z5), Fold(z6), Fold(z7));
            return;
        }
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default, b6 = default, b7 = default;
        for (int i = 0; i < length; i += 8)
        {
            var x = Vector256.Load(q0 + i);
            var y = Vector256.Load(q1 + i);
            var k = Vector256.Load(keys + i);
            a0 = Vector256.FusedMultiplyAdd(x, k, a0); b0 = Vector256.FusedMultiplyAdd(y, k, b0);
            k = Vector256.Load(keys + length + i);
            a1 = Vector256.FusedMultiplyAdd(x, k, a1); b1 = Vector256.FusedMultiplyAdd(y, k, b1);
            k = Vector256.Load(keys + 2 * length + i);
            a2 = Vector256.FusedMultiplyAdd(x, k, a2); b2 = Vector256.FusedMultiplyAdd(y, k, b2);
            k = Vector256.Load(keys + 3 * length + i);
            a3 = Vector256.FusedMultiplyAdd(x, k, a3); b3 = Vector256.FusedMultiplyAdd(y, k, b3);
            k = Vector256.Load(keys + 4 * length + i);
            a4 = Vector256.FusedMultiplyAdd(x, k, a4); b4 = Vector256.FusedMultiplyAdd(y, k, b4);
            k = Vector256.Load(keys + 5 * length + i);
            a5 = Vector256.FusedMultiplyAdd(x, k, a5); b5 = Vector256.FusedMultiplyAdd(y, k, b5);
            k = Vector256.Load(keys + 6 * length + i);
            a6 = Vector256.FusedMultiplyAdd(x, k, a6); b6 = Vector256.FusedMultiplyAdd(y, k, b6);
            k = Vector256.Load(keys + 7 * length + i);
            a7 = Vector256.FusedMultiplyAdd(x, k, a7); b7 = Vector256.FusedMultiplyAdd(y, k, b7);
        }
        result0 = Reduce8(a0, a1, a2, a3, a4, a5, a6, a7);
        result1 = Reduce8(b0, b1, b2, b3, b4, b5, b6, b7);
    }

    /// <summary>acc = acc * correction + Σ_j p[j] * values[j] for the elements [from, width), in key order for every
    /// element (32 elements at a time share each broadcast of p[j]).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Accumulate(float* acc, float correction, float* p, float* values, int n, int width, int from)
    {
        int d = from;
        // Each element's operations (scale, then one fused multiply-add per key in key order) are the same at every
        // vector width, so the 16-lane form gives the bits of the 8-lane one with half the instructions.
        if (Vector512.IsHardwareAccelerated)
            for (; d + 64 <= width; d += 64)
            {
                var a0 = Vector512.Load(acc + d) * correction;
                var a1 = Vector512.Load(acc + d + 16) * correction;
                var a2 = Vector512.Load(acc + d + 32) * correction;
                var a3 = Vector512.Load(acc + d + 48) * correction;
                for (int j = 0; j < n; j++)
                {
                    var pj = Vector512.Create(p[j]);
                    float* v = values + j * width + d;
                    a0 = Vector512.FusedMultiplyAdd(pj, Vector512.Load(v), a0);
                    a1 = Vector512.FusedMultiplyAdd(pj, Vector512.Load(v + 16), a1);
                    a2 = Vector512.FusedMultiplyAdd(pj, Vector512.Load(v + 32), a2);
                    a3 = Vector512.FusedMultiplyAdd(pj, Vector512.Load(v + 48), a3);
                }
                a0.Store(acc + d); a1.Store(acc + d + 16); a2.Store(acc + d + 32); a3.Store(acc + d + 48);
            }
        if (Vector256.IsHardwareAccelerated)
            for (; d + 32 <= width; d += 32)
            {
                var a0 = Vector256.Load(acc + d) * correction;
                var a1 = Vector256.Load(acc + d + 8) * correction;
                var a2 = Vector256.Load(acc + d + 16) * correction;
                var a3 = Vector256.Load(acc + d + 24) * correction;
                for (int j = 0; j < n; j++)
                {
                    var pj = Vector256.Create(p[j]);
                    float* v = values + j * width + d;
                    a0 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(v), a0);
                    a1 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(v + 8), a1);
                    a2 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(v + 16), a2);
                    a3 = Vector256.FusedMultiplyAdd(pj, Vector256.Load(v + 24), a3);
                }
                a0.Store(acc + d); a1.Store(acc + d + 8); a2.Store(acc + d + 16); a3.Store(acc + d + 24);
            }
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

    /// <summary><see cref="Accumulate"/> for two heads over the same values: each value vector is loaded once for
    /// both. Every element takes the same operations in the same order as alone (scale, then one fused multiply-add
    /// per key in key order), so the bits are those of two calls.</summary>
    static void AccumulateTwo(float* acc0, float correction0, float* p0, float* acc1, float correction1, float* p1, float* values, int n, int width)
    {
        int d = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; d + 64 <= width; d += 64)
            {
                var a0 = Vector512.Load(acc0 + d) * correction0;
                var a1 = Vector512.Load(acc0 + d + 16) * correction0;
                var a2 = Vector512.Load(acc0 + d + 32) * correction0;
                var a3 = Vector512.Load(acc0 + d + 48) * correction0;
                var b0 = Vector512.Load(acc1 + d) * correction1;
                var b1 = Vector512.Load(acc1 + d + 16) * correction1;
                var b2 = Vector512.Load(acc1 + d + 32) * correction1;
                var b3 = Vector512.Load(acc1 + d + 48) * correction1;
                for (int j = 0; j < n; j++)
                {
                    var pj = Vector512.Create(p0[j]);
                    var qj = Vector512.Create(p1[j]);
                    float* v = values + j * width + d;
                    var v0 = Vector512.Load(v);
                    a0 = Vector512.FusedMultiplyAdd(pj, v0, a0); b0 = Vector512.FusedMultiplyAdd(qj, v0, b0);
                    var v1 = Vector512.Load(v + 16);
                    a1 = Vector512.FusedMultiplyAdd(pj, v1, a1); b1 = Vector512.FusedMultiplyAdd(qj, v1, b1);
                    var v2 = Vector512.Load(v + 32);
                    a2 = Vector512.FusedMultiplyAdd(pj, v2, a2); b2 = Vector512.FusedMultiplyAdd(qj, v2, b2);
                    var v3 = Vector512.Load(v + 48);
                    a3 = Vector512.FusedMultiplyAdd(pj, v3, a3); b3 = Vector512.FusedMultiplyAdd(qj, v3, b3);
                }
                a0.Store(acc0 + d); a1.Store(acc0 + d + 16); a2.Store(acc0 + d + 32); a3.Store(acc0 + d + 48);
                b0.Store(acc1 + d); b1.Store(acc1 + d + 16); b2.Store(acc1 + d + 32); b3.Store(acc1 + d + 48);
            }
        if (Vector256.IsHardwareAccelerated)
            for (; d + 32 <= width; d += 32)
            {
                var a0 = Vector256.Load(acc0 + d) * correction0;
                var a1 = Vector256.Load(acc0 + d + 8) * correction0;
                var a2 = Vector256.Load(acc0 + d + 16) * correction0;
                var a3 = Vector256.Load(acc0 + d + 24) * correction0;
                var b0 = Vector256.Load(acc1 + d) * correction1;
                var b1 = Vector256.Load(acc1 + d + 8) * correction1;
                var b2 = Vector256.Load(acc1 + d + 16) * correction1;
                var b3 = Vector256.Load(acc1 + d + 24) * correction1;
                for (int j = 0; j < n; j++)
                {
                    var pj = Vector256.Create(p0[j]);
                    var qj = Vector256.Create(p1[j]);
                    float* v = values + j * width + d;
                    var v0 = Vector256.Load(v);
                    a0 = Vector256.FusedMultiplyAdd(pj, v0, a0); b0 = Vector256.FusedMultiplyAdd(qj, v0, b0);
                    var v1 = Vector256.Load(v + 8);
                    a1 = Vector256.FusedMultiplyAdd(pj, v1, a1); b1 = Vector256.FusedMultiplyAdd(qj, v1, b1);
                    var v2 = Vector256.Load(v + 16);
                    a2 = Vector256.FusedMultiplyAdd(pj, v2, a2); b2 = Vector256.FusedMultiplyAdd(qj, v2, b2);
                    var v3 = Vector256.Load(v + 24);
                    a3 = Vector256.FusedMultiplyAdd(pj, v3, a3); b3 = Vector256.FusedMultiplyAdd(qj, v3, b3);
                }
                a0.Store(acc0 + d); a1.Store(acc0 + d + 8); a2.Store(acc0 + d + 16); a3.Store(acc0 + d + 24);
                b0.Store(acc1 + d); b1.Store(acc1 + d + 8); b2.Store(acc1 + d + 16); b3.Store(acc1 + d + 24);
            }
        Accumulate(acc0, correction0, p0, values, n, width, d);
        Accumulate(acc1, correction1, p1, values, n, width, d);
    }
}
