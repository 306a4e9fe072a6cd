using System.Runtime.CompilerServices;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Formats;

namespace Engine.Quantization;

/// <summary>F32 weights, F32 activations. The reference sums float products in double like ggml's generic
/// ggml_vec_dot_f32; the fast path is TensorPrimitives.Dot (float accumulators, every SIMD width).</summary>
internal sealed unsafe class F32Format : RowFormat
{
    public static readonly F32Format Instance = new();
    F32Format() : base(GgmlType.F32, GgmlType.F32) { }

    private protected override void DequantizeReferenceCore(byte* row, float* dst, int k)
    {
        var src = (float*)row;
        for (int i = 0; i < k; i++) dst[i] = src[i];
    }

    private protected override void DequantizeCore(byte* row, float* dst, int k)
        => new ReadOnlySpan<float>(row, k).CopyTo(new Span<float>(dst, k));

    private protected override void QuantizeActivationsCore(float* x, byte* dst, int k)
        => new ReadOnlySpan<float>(x, k).CopyTo(new Span<float>(dst, k));

    private protected override float DotReferenceCore(byte* row, byte* act, int k)
    {
        float* x = (float*)row, y = (float*)act;
        double sum = 0;
        for (int i = 0; i < k; i++) sum += x[i] * y[i];
        return (float)sum;
    }

    private protected override float DotCore(byte* row, byte* act, int k)
        => TensorPrimitives.Dot(new ReadOnlySpan<float>(row, k), new ReadOnlySpan<float>(act, k));
}

/// <summary>F16 weights; activations rounded to F16 first (llama.cpp's vec_dot_type for F16), products
/// accumulated in float (SIMD) or double (reference, as ggml's generic ggml_vec_dot_f16). The rounded activations
/// are kept as the floats they round to (exactly representable), so a dot converts only the weights: .NET exposes
/// no F16C instruction, and converting both sides in software made F16 matmuls compute-bound at a third of the
/// speed. Values and results are the same as with half activations.</summary>
internal sealed unsafe class F16Format : RowFormat
{
    public static readonly F16Format Instance = new();
    F16Format() : base(GgmlType.F16, GgmlType.F32) { }

    [ThreadStatic] static Half[]? t_rounding;

    private protected override void DequantizeReferenceCore(byte* row, float* dst, int k)
    {
        var src = (ushort*)row;
        for (int i = 0; i < k; i++) dst[i] = Fp16.ToSingle(src[i]);
    }

    private protected override void DequantizeCore(byte* row, float* dst, int k)
        => TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(row, k), new Span<float>(dst, k));

    /// <summary>x rounded to F16 (nearest even, as F16C), stored as float. The half scratch is one per thread,
    /// grown to the widest row once.</summary>
    private protected override void QuantizeActivationsCore(float* x, byte* dst, int k)
    {
        var halves = t_rounding is { } h && h.Length >= k ? t_rounding : t_rounding = new Half[Math.Max(k, 4096)];
        TensorPrimitives.ConvertToHalf(new ReadOnlySpan<float>(x, k), halves.AsSpan(0, k));
        TensorPrimitives.ConvertToSingle(halves.AsSpan(0, k), new Span<float>(dst, k));
    }

    private protected override float DotReferenceCore(byte* row, byte* act, int k)
    {
        ushort* x = (ushort*)row;
        float* y = (float*)act;
        double sum = 0;
        for (int i = 0; i < k; i++) sum += Fp16.ToSingle(x[i]) * y[i];
        return (float)sum;
    }

    /// <summary>The fast dot. Every path sums in llama.cpp's order on an AVX-512 CPU (tinyBLAS with 16 float lanes,
    /// one fused multiply-add per lane per 16 elements, then _mm512_reduce_add_ps), the elements after the last
    /// whole 16 added one by one at the end. The golden logits come from such a CPU; matching its order keeps us
    /// bit-exact with them everywhere, and every kernel here (one token, a row times four tokens, the 4 x 4 tile)
    /// gives a (row, token) the same bits, so a token's result does not depend on the batch it is in.</summary>
    private protected override float DotCore(byte* row, byte* act, int k)
    {
        ushort* x = (ushort*)row;
        float* y = (float*)act;
        int whole = k & ~15;
        if (Simd.Avx512)
        {
            // Decode streams the weights once: 32 halves are checked at a time, the cheapest form of the fast path.
            Vector512<float> acc = default;
            int i = 0;
            for (; i + 32 <= whole; i += 32)
            {
                if (Fp16.AllNormal32(x + i))
                {
                    acc = Avx512F.FusedMultiplyAdd(Fp16.Load16NormalAvx512(x + i), Vector512.Load(y + i), acc);
                    acc = Avx512F.FusedMultiplyAdd(Fp16.Load16NormalAvx512(x + i + 16), Vector512.Load(y + i + 16), acc);
                }
                else
                {
                    acc = Avx512F.FusedMultiplyAdd(Fp16.Load16Avx512(x + i), Vector512.Load(y + i), acc);
                    acc = Avx512F.FusedMultiplyAdd(Fp16.Load16Avx512(x + i + 16), Vector512.Load(y + i + 16), acc);
                }
            }
            if (i < whole) acc = Avx512F.FusedMultiplyAdd(Fp16.Load16Avx512(x + i), Vector512.Load(y + i), acc);
            return Tail(x, y, whole, k, Simd.HSum(acc));
        }
        if (Simd.Avx2Fma)
        {
            Vector256<float> lo = default, hi = default;
            for (int i = 0; i < whole; i += 16)
            {
                Fp16.Load16Avx2(x + i, out var wLo, out var wHi);
                lo = Fma.MultiplyAdd(wLo, Vector256.Load(y + i), lo);
                hi = Fma.MultiplyAdd(wHi, Vector256.Load(y + i + 8), hi);
            }
            return Tail(x, y, whole, k, Simd.HSum(lo + hi));
        }
        int j = 0;
        float sum = 0;
        if (Simd.V128)
        {
            Vector128<float> a0 = default, a1 = default;
            for (; j + 8 <= k; j += 8)
            {
                var vx = Vector128.Load(x + j);
                a0 += Fp16.ToSingle(Vector128.WidenLower(vx)) * Vector128.Load(y + j);
                a1 += Fp16.ToSingle(Vector128.WidenUpper(vx)) * Vector128.Load(y + j + 4);
            }
            sum = Vector128.Sum(a0 + a1);
        }
        return Tail(x, y, j, k, sum);
    }

    /// <summary>Rows at least this long are multiplied four at a time in decode. Measured: on rows of 8960 halves four
    /// interleaved rows ran 2-2.5x faster than one (each row's single accumulator is a chain of dependent fused
    /// multiply-adds; four chains fill the pipeline), on rows of 1536 they ran slower (four short streams at once).</summary>
    const int InterleaveFrom = 4096;

    /// <summary>Decode form. With AVX-512 and long rows, four rows at a time, each with <see cref="DotCore"/>'s
    /// operations in its order (so its bits); shorter rows one at a time.</summary>
    internal override void MatVecCore(byte* weights, long rowBytes, int k, byte* act, float* y, int rowStart, int rowEnd)
    {
        int r = rowStart;
        if (Simd.Avx512 && k >= InterleaveFrom)
            for (; r + 4 <= rowEnd; r += 4) Rows4Avx512(weights + r * rowBytes, rowBytes, (float*)act, k, y + r);
        for (; r < rowEnd; r++) y[r] = DotCore(weights + r * rowBytes, act, k);
    }

    /// <summary>Four rows (row i at row + i * rowBytes) times one token: y[0..3].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Rows4Avx512(byte* row, long rowBytes, float* x, int k, float* y)
    {
        ushort* w0 = (ushort*)row, w1 = (ushort*)(row + rowBytes), w2 = (ushort*)(row + 2 * rowBytes), w3 = (ushort*)(row + 3 * rowBytes);
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default;
        int whole = k & ~15, i = 0;
        for (; i + 32 <= whole; i += 32)
        {
            var lo = Vector512.Load(x + i);
            var hi = Vector512.Load(x + i + 16);
            c0 = Step32(w0 + i, lo, hi, c0);
            c1 = Step32(w1 + i, lo, hi, c1);
            c2 = Step32(w2 + i, lo, hi, c2);
            c3 = Step32(w3 + i, lo, hi, c3);
        }
        if (i < whole)
        {
            var lo = Vector512.Load(x + i);
            c0 = Avx512F.FusedMultiplyAdd(Fp16.Load16Avx512(w0 + i), lo, c0);
            c1 = Avx512F.FusedMultiplyAdd(Fp16.Load16Avx512(w1 + i), lo, c1);
            c2 = Avx512F.FusedMultiplyAdd(Fp16.Load16Avx512(w2 + i), lo, c2);
            c3 = Avx512F.FusedMultiplyAdd(Fp16.Load16Avx512(w3 + i), lo, c3);
        }
        y[0] = Tail(w0, x, whole, k, Simd.HSum(c0));
        y[1] = Tail(w1, x, whole, k, Simd.HSum(c1));
        y[2] = Tail(w2, x, whole, k, Simd.HSum(c2));
        y[3] = Tail(w3, x, whole, k, Simd.HSum(c3));
    }

    /// <summary>One row's 32 halves at w times the activations lo and hi, as one step of <see cref="DotCore"/>'s loop.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Step32(ushort* w, Vector512<float> lo, Vector512<float> hi, Vector512<float> acc)
    {
        if (Fp16.AllNormal32(w))
        {
            acc = Avx512F.FusedMultiplyAdd(Fp16.Load16NormalAvx512(w), lo, acc);
            return Avx512F.FusedMultiplyAdd(Fp16.Load16NormalAvx512(w + 16), hi, acc);
        }
        acc = Avx512F.FusedMultiplyAdd(Fp16.Load16ExactAvx512(w), lo, acc);
        return Avx512F.FusedMultiplyAdd(Fp16.Load16ExactAvx512(w + 16), hi, acc);
    }

    /// <summary>Adds the products of elements [from, k) to sum, one at a time: the tail of every kernel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Tail(ushort* x, float* y, int from, int k, float sum)
    {
        for (int i = from; i < k; i++) sum += Fp16.ToSingle(x[i]) * y[i];
        return sum;
    }

    /// <summary>Rows converted to float at once by the AVX-512 prompt kernel (the matmul hands out row tiles of 16).</summary>
    const int ConvertedRows = 16;

    /// <summary>Per-thread float copy of the rows being multiplied, grown to the longest rows once and pinned.</summary>
    [ThreadStatic] static float[]? t_convertedRows;

    /// <summary>Prompt form. With AVX-512, up to 16 rows are converted to float once (exactly) and then pass in tiles
    /// of 4 rows x 4 tokens over every group of four tokens: 16 accumulators in registers, each 16 weights loaded
    /// once for four tokens and each 16 activations once for four rows (tinyBLAS's scheme), with no conversion left
    /// in the loop. Rows left over go a row times four tokens, tokens left over one at a time. With AVX2 alone, a row
    /// times four tokens (16 registers are too few for the tile). Every (row, token) gets the bits of
    /// <see cref="DotCore"/>.</summary>
    internal override void MatMulCore(byte* weights, long rowBytes, int k, byte* acts, int actStride, int tokens,
        float* y, int yStride, int rowStart, int rowEnd)
    {
        if (!Simd.Avx2Fma)
        {
            base.MatMulCore(weights, rowBytes, k, acts, actStride, tokens, y, yStride, rowStart, rowEnd);
            return;
        }
        if (Simd.Avx512 && tokens >= 4)
        {
            for (int chunk = rowStart; chunk < rowEnd; chunk += ConvertedRows)
                MatMulConverted(weights, rowBytes, k, acts, actStride, tokens, y, yStride, chunk, Math.Min(rowEnd, chunk + ConvertedRows));
            return;
        }
        int t = 0;
        for (; t + 4 <= tokens; t += 4)
            for (int r = rowStart; r < rowEnd; r++)
                Dot4(weights + r * rowBytes, acts + (long)t * actStride, actStride, k, y + (long)t * yStride + r, yStride);
        MatVecEachToken(weights, rowBytes, k, acts, actStride, t, tokens, y, yStride, rowStart, rowEnd);
    }

    /// <summary>Rows [rowStart, rowEnd), at most <see cref="ConvertedRows"/>, times every token (AVX-512).</summary>
    void MatMulConverted(byte* weights, long rowBytes, int k, byte* acts, int actStride, int tokens,
        float* y, int yStride, int rowStart, int rowEnd)
    {
        int tiledRows = (rowEnd - rowStart) & ~3;
        long need = (long)tiledRows * k;
        var converted = t_convertedRows is { } c && c.Length >= need ? c : t_convertedRows = GC.AllocateUninitializedArray<float>(checked((int)need), pinned: true);
        fixed (float* rows = converted)
        {
            for (int i = 0; i < tiledRows; i++) ConvertRow((ushort*)(weights + (rowStart + i) * rowBytes), rows + (long)i * k, k);
            MultiplyFloatRows(rows, tiledRows, k, acts, actStride, tokens, y + rowStart, yStride);
        }
        int t = 0;
        for (; t + 4 <= tokens; t += 4)
            for (int r = rowStart + tiledRows; r < rowEnd; r++)
                Dot4(weights + r * rowBytes, acts + (long)t * actStride, actStride, k, y + (long)t * yStride + r, yStride);
        MatVecEachToken(weights, rowBytes, k, acts, actStride, t, tokens, y, yStride, rowStart + tiledRows, rowEnd);
    }

    /// <summary>Float rows (a multiple of 4 of them, row i at rows + i * k, converted exactly from halves) times every
    /// token (AVX-512): y[t * yStride + i]. Groups of four tokens go through the 4 x 4 tile, the tokens left over one
    /// at a time; every (row, token) gets <see cref="DotCore"/>'s bits. The prompt form of the repacked F16 layout
    /// (<see cref="Repacked.F16x8"/>) shares it.</summary>
    internal static void MultiplyFloatRows(float* rows, int rowCount, int k, byte* acts, int actStride, int tokens, float* y, int yStride)
    {
        int t = 0;
        for (; t + 4 <= tokens; t += 4)
        {
            byte* group = acts + (long)t * actStride;
            float* yt = y + (long)t * yStride;
            for (int r = 0; r < rowCount; r += 4)
                Tile4x4Avx512(rows + (long)r * k, k, group, actStride, yt + r, yStride);
        }
        for (; t < tokens; t++)
        {
            var x = (float*)(acts + (long)t * actStride);
            for (int r = 0; r < rowCount; r++) y[(long)t * yStride + r] = FloatDotAvx512(rows + (long)r * k, x, k);
        }
    }

    /// <summary>A float row times one token in <see cref="DotCore"/>'s order.</summary>
    static float FloatDotAvx512(float* w, float* x, int k)
    {
        Vector512<float> acc = default;
        int whole = k & ~15;
        for (int i = 0; i < whole; i += 16) acc = Avx512F.FusedMultiplyAdd(Vector512.Load(w + i), Vector512.Load(x + i), acc);
        return FloatTail(w, x, whole, k, Simd.HSum(acc));
    }

    /// <summary>k halves to floats, exactly (the fast rebias for runs of normal halves, the full conversion otherwise).</summary>
    static void ConvertRow(ushort* halves, float* dst, int k)
    {
        int i = 0;
        for (; i + 16 <= k; i += 16) Fp16.Load16Avx512(halves + i).Store(dst + i);
        for (; i < k; i++) dst[i] = Fp16.ToSingle(halves[i]);
    }

    /// <summary>4 float rows (row i at rows + i * k) times 4 tokens (token j's activations at act + j * actStride):
    /// y[j * yStride + i]. The elements after the last whole 16 are added one by one, as in <see cref="Tail"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Tile4x4Avx512(float* rows, int k, byte* act, int actStride, float* y, int yStride)
    {
        float* w0 = rows, w1 = rows + k, w2 = rows + 2 * k, w3 = rows + 3 * k;
        float* a0 = (float*)act, a1 = (float*)(act + actStride), a2 = (float*)(act + 2 * actStride), a3 = (float*)(act + 3 * actStride);
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        int whole = k & ~15;
        for (int i = 0; i < whole; i += 16)
        {
            var b0 = Vector512.Load(w0 + i);
            var b1 = Vector512.Load(w1 + i);
            var b2 = Vector512.Load(w2 + i);
            var b3 = Vector512.Load(w3 + i);
            var x = Vector512.Load(a0 + i);
            c00 = Avx512F.FusedMultiplyAdd(b0, x, c00); c10 = Avx512F.FusedMultiplyAdd(b1, x, c10);
            c20 = Avx512F.FusedMultiplyAdd(b2, x, c20); c30 = Avx512F.FusedMultiplyAdd(b3, x, c30);
            x = Vector512.Load(a1 + i);
            c01 = Avx512F.FusedMultiplyAdd(b0, x, c01); c11 = Avx512F.FusedMultiplyAdd(b1, x, c11);
            c21 = Avx512F.FusedMultiplyAdd(b2, x, c21); c31 = Avx512F.FusedMultiplyAdd(b3, x, c31);
            x = Vector512.Load(a2 + i);
            c02 = Avx512F.FusedMultiplyAdd(b0, x, c02); c12 = Avx512F.FusedMultiplyAdd(b1, x, c12);
            c22 = Avx512F.FusedMultiplyAdd(b2, x, c22); c32 = Avx512F.FusedMultiplyAdd(b3, x, c32);
            x = Vector512.Load(a3 + i);
            c03 = Avx512F.FusedMultiplyAdd(b0, x, c03); c13 = Avx512F.FusedMultiplyAdd(b1, x, c13);
            c23 = Avx512F.FusedMultiplyAdd(b2, x, c23); c33 = Avx512F.FusedMultiplyAdd(b3, x, c33);
        }
        y[0] = FloatTail(w0, a0, whole, k, Simd.HSum(c00)); y[1] = FloatTail(w1, a0, whole, k, Simd.HSum(c10));
        y[2] = FloatTail(w2, a0, whole, k, Simd.HSum(c20)); y[3] = FloatTail(w3, a0, whole, k, Simd.HSum(c30));
        y += yStride;
        y[0] = FloatTail(w0, a1, whole, k, Simd.HSum(c01)); y[1] = FloatTail(w1, a1, whole, k, Simd.HSum(c11));
        y[2] = FloatTail(w2, a1, whole, k, Simd.HSum(c21)); y[3] = FloatTail(w3, a1, whole, k, Simd.HSum(c31));
        y += yStride;
        y[0] = FloatTail(w0, a2, whole, k, Simd.HSum(c02)); y[1] = FloatTail(w1, a2, whole, k, Simd.HSum(c12));
        y[2] = FloatTail(w2, a2, whole, k, Simd.HSum(c22)); y[3] = FloatTail(w3, a2, whole, k, Simd.HSum(c32));
        y += yStride;
        y[0] = FloatTail(w0, a3, whole, k, Simd.HSum(c03)); y[1] = FloatTail(w1, a3, whole, k, Simd.HSum(c13));
        y[2] = FloatTail(w2, a3, whole, k, Simd.HSum(c23)); y[3] = FloatTail(w3, a3, whole, k, Simd.HSum(c33));
    }

    /// <summary><see cref="Tail"/> over weights already converted to float: the same products in the same order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float FloatTail(float* w, float* y, int from, int k, float sum)
    {
        for (int i = from; i < k; i++) sum += w[i] * y[i];
        return sum;
    }

    /// <summary>One row times 4 tokens: each 16 weights converted once.</summary>
    static void Dot4(byte* row, byte* act, int actStride, int k, float* y, int yStride)
    {
        ushort* x = (ushort*)row;
        float* a0 = (float*)act, a1 = (float*)(act + actStride), a2 = (float*)(act + 2 * actStride), a3 = (float*)(act + 3 * actStride);
        int whole = k & ~15;
        float s0, s1, s2, s3;
        if (Simd.Avx512)
        {
            Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default;
            for (int i = 0; i < whole; i += 16)
            {
                var w = Fp16.Load16Avx512(x + i);
                c0 = Avx512F.FusedMultiplyAdd(w, Vector512.Load(a0 + i), c0);
                c1 = Avx512F.FusedMultiplyAdd(w, Vector512.Load(a1 + i), c1);
                c2 = Avx512F.FusedMultiplyAdd(w, Vector512.Load(a2 + i), c2);
                c3 = Avx512F.FusedMultiplyAdd(w, Vector512.Load(a3 + i), c3);
            }
            s0 = Simd.HSum(c0); s1 = Simd.HSum(c1); s2 = Simd.HSum(c2); s3 = Simd.HSum(c3);
        }
        else
        {
            Vector256<float> lo0 = default, hi0 = default, lo1 = default, hi1 = default, lo2 = default, hi2 = default, lo3 = default, hi3 = default;
            for (int i = 0; i < whole; i += 16)
            {
                Fp16.Load16Avx2(x + i, out var wLo, out var wHi);
                lo0 = Fma.MultiplyAdd(wLo, Vector256.Load(a0 + i), lo0); hi0 = Fma.MultiplyAdd(wHi, Vector256.Load(a0 + i + 8), hi0);
                lo1 = Fma.MultiplyAdd(wLo, Vector256.Load(a1 + i), lo1); hi1 = Fma.MultiplyAdd(wHi, Vector256.Load(a1 + i + 8), hi1);
                lo2 = Fma.MultiplyAdd(wLo, Vector256.Load(a2 + i), lo2); hi2 = Fma.MultiplyAdd(wHi, Vector256.Load(a2 + i + 8), hi2);
                lo3 = Fma.MultiplyAdd(wLo, Vector256.Load(a3 + i), lo3); hi3 = Fma.MultiplyAdd(wHi, Vector256.Load(a3 + i + 8), hi3);
            }
            s0 = Simd.HSum(lo0 + hi0); s1 = Simd.HSum(lo1 + hi1); s2 = Simd.HSum(lo2 + hi2); s3 = Simd.HSum(lo3 + hi3);
        }
        y[0] = Tail(x, a0, whole, k, s0); y[yStride] = Tail(x, a1, whole, k, s1);
        y[2 * yStride] = Tail(x, a2, whole, k, s2); y[3 * yStride] = Tail(x, a3, whole, k, s3);
    }
}

/// <summary>BF16 weights; activations rounded to BF16 (nearest even), products accumulated in float (SIMD)
/// or double (reference, as ggml's generic ggml_vec_dot_bf16).</summary>
internal sealed unsafe class BF16Format : RowFormat
{
    public static readonly BF16Format Instance = new();
    BF16Format() : base(GgmlType.BF16, GgmlType.BF16) { }

    private protected override void DequantizeReferenceCore(byte* row, float* dst, int k)
    {
        var src = (ushort*)row;
        for (int i = 0; i < k; i++) dst[i] = Fp16.BF16ToSingle(src[i]);
    }

    private protected override void DequantizeCore(byte* row, float* dst, int k)
    {
        var src = (ushort*)row;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= k; i += 8) Fp16.LoadBF8(src + i).Store(dst + i);
        for (; i < k; i++) dst[i] = Fp16.BF16ToSingle(src[i]);
    }

    private protected override void QuantizeActivationsCore(float* x, byte* dst, int k)
    {
        var d = (ushort*)dst;
        for (int i = 0; i < k; i++) d[i] = Fp16.SingleToBF16(x[i]);
    }

    private protected override float DotReferenceCore(byte* row, byte* act, int k)
    {
        ushort* x = (ushort*)row, y = (ushort*)act;
        double sum = 0;
        for (int i = 0; i < k; i++) sum += Fp16.BF16ToSingle(x[i]) * Fp16.BF16ToSingle(y[i]);
        return (float)sum;
    }

    /// <summary>The fast dot, in llama.cpp's order on a CPU with AVX512-BF16 (tinyBLAS over vdpbf16ps): 16 float
    /// lanes, lane j taking elements 2j+1 then 2j of each 32 (lanes 0-7 from the first 16 elements, 8-15 from the
    /// next 16), then _mm512_reduce_add_ps, the elements after the last whole 32 added one by one at the end. A
    /// bfloat16 product has at most 16 significant bits, so it is exact in float and a fused multiply-add gives the
    /// bits of vdpbf16ps's multiply then add. Every kernel here (one token, a row times four tokens, the 4 x 4 tile)
    /// gives a (row, token) these bits, so a token's result does not depend on the batch it is in.</summary>
    private protected override float DotCore(byte* row, byte* act, int k)
    {
        ushort* x = (ushort*)row, y = (ushort*)act;
        int whole = k & ~31;
        if (Simd.Avx512)
        {
            Vector512<float> acc = default;
            for (int i = 0; i < whole; i += 32) acc = Pairs(Vector512.Load((uint*)(x + i)), Vector512.Load((uint*)(y + i)), acc);
            return Tail(x, y, whole, k, Simd.HSum(acc));
        }
        if (Simd.Avx2Fma)
        {
            Vector256<float> lo = default, hi = default;
            for (int i = 0; i < whole; i += 32)
            {
                lo = Pairs(Vector256.Load((uint*)(x + i)), Vector256.Load((uint*)(y + i)), lo);
                hi = Pairs(Vector256.Load((uint*)(x + i + 16)), Vector256.Load((uint*)(y + i + 16)), hi);
            }
            return Tail(x, y, whole, k, Simd.HSum(lo + hi));
        }
        int j = 0;
        float sum = 0;
        if (Simd.V128)
        {
            Vector128<float> a0 = default, a1 = default;
            for (; j + 8 <= k; j += 8)
            {
                var vx = Vector128.Load(x + j);
                var vy = Vector128.Load(y + j);
                a0 += (Vector128.WidenLower(vx) << 16).AsSingle() * (Vector128.WidenLower(vy) << 16).AsSingle();
                a1 += (Vector128.WidenUpper(vx) << 16).AsSingle() * (Vector128.WidenUpper(vy) << 16).AsSingle();
            }
            sum = Vector128.Sum(a0 + a1);
        }
        return Tail(x, y, j, k, sum);
    }

    /// <summary>Adds the products of elements [from, k) to sum, one at a time: the tail of every kernel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Tail(ushort* x, ushort* y, int from, int k, float sum)
    {
        for (int i = from; i < k; i++) sum += Fp16.BF16ToSingle(x[i]) * Fp16.BF16ToSingle(y[i]);
        return sum;
    }

    /// <summary>Prompt form. With AVX-512, tiles of 4 rows x 4 tokens: each 32 weights are split into their odd and
    /// even halves once for four tokens, each 32 activations once for four rows, 16 accumulators in registers. Rows
    /// left over go a row times four tokens, tokens left over one at a time. With AVX2 alone, a row times four
    /// tokens. Every (row, token) gets the bits of <see cref="DotCore"/>.</summary>
    internal override void MatMulCore(byte* weights, long rowBytes, int k, byte* acts, int actStride, int tokens,
        float* y, int yStride, int rowStart, int rowEnd)
    {
        if (!Simd.Avx2Fma)
        {
            base.MatMulCore(weights, rowBytes, k, acts, actStride, tokens, y, yStride, rowStart, rowEnd);
            return;
        }
        int t = 0;
        for (; t + 4 <= tokens; t += 4)
        {
            byte* group = acts + (long)t * actStride;
            float* yt = y + (long)t * yStride;
            int r = rowStart;
            if (Simd.Avx512)
                for (; r + 4 <= rowEnd; r += 4)
                    Tile4x4Avx512(weights + r * rowBytes, rowBytes, group, actStride, k, yt + r, yStride);
            for (; r < rowEnd; r++)
                Dot4(weights + r * rowBytes, group, actStride, k, yt + r, yStride);
        }
        MatVecEachToken(weights, rowBytes, k, acts, actStride, t, tokens, y, yStride, rowStart, rowEnd);
    }

    /// <summary>4 rows (row i at row + i * rowBytes) times 4 tokens (token j's activations at act + j * actStride):
    /// y[j * yStride + i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Tile4x4Avx512(byte* row, long rowBytes, byte* act, int actStride, int k, float* y, int yStride)
    {
        ushort* w0 = (ushort*)row, w1 = (ushort*)(row + rowBytes), w2 = (ushort*)(row + 2 * rowBytes), w3 = (ushort*)(row + 3 * rowBytes);
        ushort* a0 = (ushort*)act, a1 = (ushort*)(act + actStride), a2 = (ushort*)(act + 2 * actStride), a3 = (ushort*)(act + 3 * actStride);
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        var high = Vector512.Create(0xFFFF0000u);
        int whole = k & ~31;
        for (int i = 0; i < whole; i += 32)
        {
            var v0 = Vector512.Load((uint*)(w0 + i)); var v1 = Vector512.Load((uint*)(w1 + i));
            var v2 = Vector512.Load((uint*)(w2 + i)); var v3 = Vector512.Load((uint*)(w3 + i));
            Vector512<float> o0 = (v0 & high).AsSingle(), e0 = (v0 << 16).AsSingle(), o1 = (v1 & high).AsSingle(), e1 = (v1 << 16).AsSingle();
            Vector512<float> o2 = (v2 & high).AsSingle(), e2 = (v2 << 16).AsSingle(), o3 = (v3 & high).AsSingle(), e3 = (v3 << 16).AsSingle();
            var x = Vector512.Load((uint*)(a0 + i));
            Vector512<float> xo = (x & high).AsSingle(), xe = (x << 16).AsSingle();
            c00 = Pair(o0, e0, xo, xe, c00); c10 = Pair(o1, e1, xo, xe, c10); c20 = Pair(o2, e2, xo, xe, c20); c30 = Pair(o3, e3, xo, xe, c30);
            x = Vector512.Load((uint*)(a1 + i));
            xo = (x & high).AsSingle(); xe = (x << 16).AsSingle();
            c01 = Pair(o0, e0, xo, xe, c01); c11 = Pair(o1, e1, xo, xe, c11); c21 = Pair(o2, e2, xo, xe, c21); c31 = Pair(o3, e3, xo, xe, c31);
            x = Vector512.Load((uint*)(a2 + i));
            xo = (x & high).AsSingle(); xe = (x << 16).AsSingle();
            c02 = Pair(o0, e0, xo, xe, c02); c12 = Pair(o1, e1, xo, xe, c12); c22 = Pair(o2, e2, xo, xe, c22); c32 = Pair(o3, e3, xo, xe, c32);
            x = Vector512.Load((uint*)(a3 + i));
            xo = (x & high).AsSingle(); xe = (x << 16).AsSingle();
            c03 = Pair(o0, e0, xo, xe, c03); c13 = Pair(o1, e1, xo, xe, c13); c23 = Pair(o2, e2, xo, xe, c23); c33 = Pair(o3, e3, xo, xe, c33);
        }
        y[0] = Tail(w0, a0, whole, k, Simd.HSum(c00)); y[1] = Tail(w1, a0, whole, k, Simd.HSum(c10));
        y[2] = Tail(w2, a0, whole, k, Simd.HSum(c20)); y[3] = Tail(w3, a0, whole, k, Simd.HSum(c30));
        y += yStride;
        y[0] = Tail(w0, a1, whole, k, Simd.HSum(c01)); y[1] = Tail(w1, a1, whole, k, Simd.HSum(c11));
        y[2] = Tail(w2, a1, whole, k, Simd.HSum(c21)); y[3] = Tail(w3, a1, whole, k, Simd.HSum(c31));
        y += yStride;
        y[0] = Tail(w0, a2, whole, k, Simd.HSum(c02)); y[1] = Tail(w1, a2, whole, k, Simd.HSum(c12));
        y[2] = Tail(w2, a2, whole, k, Simd.HSum(c22)); y[3] = Tail(w3, a2, whole, k, Simd.HSum(c32));
        y += yStride;
        y[0] = Tail(w0, a3, whole, k, Simd.HSum(c03)); y[1] = Tail(w1, a3, whole, k, Simd.HSum(c13));
        y[2] = Tail(w2, a3, whole, k, Simd.HSum(c23)); y[3] = Tail(w3, a3, whole, k, Simd.HSum(c33));
    }

    /// <summary>One row times 4 tokens: each 32 weights split into odd and even halves once.</summary>
    static void Dot4(byte* row, byte* act, int actStride, int k, float* y, int yStride)
    {
        ushort* x = (ushort*)row;
        ushort* a0 = (ushort*)act, a1 = (ushort*)(act + actStride), a2 = (ushort*)(act + 2 * actStride), a3 = (ushort*)(act + 3 * actStride);
        int whole = k & ~31;
        float s0, s1, s2, s3;
        if (Simd.Avx512)
        {
            var high = Vector512.Create(0xFFFF0000u);
            Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default;
            for (int i = 0; i < whole; i += 32)
            {
                var w = Vector512.Load((uint*)(x + i));
                Vector512<float> odd = (w & high).AsSingle(), even = (w << 16).AsSingle();
                c0 = Pairs(odd, even, Vector512.Load((uint*)(a0 + i)), c0);
                c1 = Pairs(odd, even, Vector512.Load((uint*)(a1 + i)), c1);
                c2 = Pairs(odd, even, Vector512.Load((uint*)(a2 + i)), c2);
                c3 = Pairs(odd, even, Vector512.Load((uint*)(a3 + i)), c3);
            }
            s0 = Simd.HSum(c0); s1 = Simd.HSum(c1); s2 = Simd.HSum(c2); s3 = Simd.HSum(c3);
        }
        else
        {
            var high = Vector256.Create(0xFFFF0000u);
            Vector256<float> lo0 = default, hi0 = default, lo1 = default, hi1 = default, lo2 = default, hi2 = default, lo3 = default, hi3 = default;
            for (int i = 0; i < whole; i += 32)
            {
                var wLo = Vector256.Load((uint*)(x + i));
                var wHi = Vector256.Load((uint*)(x + i + 16));
                Vector256<float> oddLo = (wLo & high).AsSingle(), evenLo = (wLo << 16).AsSingle();
                Vector256<float> oddHi = (wHi & high).AsSingle(), evenHi = (wHi << 16).AsSingle();
                lo0 = Pairs(oddLo, evenLo, Vector256.Load((uint*)(a0 + i)), lo0); hi0 = Pairs(oddHi, evenHi, Vector256.Load((uint*)(a0 + i + 16)), hi0);
                lo1 = Pairs(oddLo, evenLo, Vector256.Load((uint*)(a1 + i)), lo1); hi1 = Pairs(oddHi, evenHi, Vector256.Load((uint*)(a1 + i + 16)), hi1);
                lo2 = Pairs(oddLo, evenLo, Vector256.Load((uint*)(a2 + i)), lo2); hi2 = Pairs(oddHi, evenHi, Vector256.Load((uint*)(a2 + i + 16)), hi2);
                lo3 = Pairs(oddLo, evenLo, Vector256.Load((uint*)(a3 + i)), lo3); hi3 = Pairs(oddHi, evenHi, Vector256.Load((uint*)(a3 + i + 16)), hi3);
            }
            s0 = Simd.HSum(lo0 + hi0); s1 = Simd.HSum(lo1 + hi1); s2 = Simd.HSum(lo2 + hi2); s3 = Simd.HSum(lo3 + hi3);
        }
        y[0] = Tail(x, a0, whole, k, s0); y[yStride] = Tail(x, a1, whole, k, s1);
        y[2 * yStride] = Tail(x, a2, whole, k, s2); y[3 * yStride] = Tail(x, a3, whole, k, s3);
    }

    /// <summary>One vdpbf16ps step on 8 lanes: acc + odd products, then + even products (pairs of bfloat16 in each
    /// 32-bit lane of w and x).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Pairs(Vector256<uint> w, Vector256<uint> x, Vector256<float> acc)
    {
        var high = Vector256.Create(0xFFFF0000u);
        return Pairs((w & high).AsSingle(), (w << 16).AsSingle(), x, acc);
    }

    /// <summary><see cref="Pairs(Vector256{uint}, Vector256{uint}, Vector256{float})"/> with the weight halves already split.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Pairs(Vector256<float> odd, Vector256<float> even, Vector256<uint> x, Vector256<float> acc)
    {
        acc = Fma.MultiplyAdd(odd, (x & Vector256.Create(0xFFFF0000u)).AsSingle(), acc);
        return Fma.MultiplyAdd(even, (x << 16).AsSingle(), acc);
    }

    /// <summary>One vdpbf16ps step on 16 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Pairs(Vector512<uint> w, Vector512<uint> x, Vector512<float> acc)
    {
        var high = Vector512.Create(0xFFFF0000u);
        return Pairs((w & high).AsSingle(), (w << 16).AsSingle(), x, acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Pairs(Vector512<float> odd, Vector512<float> even, Vector512<uint> x, Vector512<float> acc) =>
        Pair(odd, even, (x & Vector512.Create(0xFFFF0000u)).AsSingle(), (x << 16).AsSingle(), acc);

    /// <summary>One vdpbf16ps step with both sides split: acc + odd products, then + even products.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Pair(Vector512<float> odd, Vector512<float> even, Vector512<float> xOdd, Vector512<float> xEven, Vector512<float> acc) =>
        Avx512F.FusedMultiplyAdd(even, xEven, Avx512F.FusedMultiplyAdd(odd, xOdd, acc));
}
