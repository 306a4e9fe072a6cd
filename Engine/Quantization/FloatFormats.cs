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

    private protected override float DotCore(byte* row, byte* act, int k)
    {
        ushort* x = (ushort*)row;
        float* y = (float*)act;
        int i = 0;
        float sum = 0;
        if (Simd.Avx2Fma)
        {
            // llama.cpp's order on an AVX-512 CPU (tinyBLAS with 16 float lanes, one fused multiply-add per
            // lane per 16 elements, then _mm512_reduce_add_ps), kept in two 8-lane halves. The golden
            // logits come from such a CPU; matching its order keeps us bit-exact with them everywhere.
            Vector256<float> lo = default, hi = default;
            for (; i + 16 <= k; i += 16)
            {
                lo = Fma.MultiplyAdd(Fp16.Load8(x + i), Vector256.Load(y + i), lo);
                hi = Fma.MultiplyAdd(Fp16.Load8(x + i + 8), Vector256.Load(y + i + 8), hi);
            }
            sum = Simd.HSum(lo + hi);
        }
        else if (Simd.V128)
        {
            Vector128<float> a0 = default, a1 = default;
            for (; i + 8 <= k; i += 8)
            {
                var vx = Vector128.Load(x + i);
                a0 += Fp16.ToSingle(Vector128.WidenLower(vx)) * Vector128.Load(y + i);
                a1 += Fp16.ToSingle(Vector128.WidenUpper(vx)) * Vector128.Load(y + i + 4);
            }
            sum = Vector128.Sum(a0 + a1);
        }
        for (; i < k; i++) sum += Fp16.ToSingle(x[i]) * y[i];
        return sum;
    }

    /// <summary>Prompt form: each 16 weights are converted once for four tokens; every (row, token) gets the bits
    /// of <see cref="DotCore"/>.</summary>
    internal override void MatMulCore(byte* weights, long rowBytes, int k, byte* acts, int actStride, int tokens,
        float* y, int yStride, int rowStart, int rowEnd)
    {
        if (Simd.Avx2Fma) MatMulInGroupsOfFour(weights, rowBytes, k, acts, actStride, tokens, y, yStride, rowStart, rowEnd, &Dot4);
        else base.MatMulCore(weights, rowBytes, k, acts, actStride, tokens, y, yStride, rowStart, rowEnd);
    }

    static void Dot4(byte* row, byte* act, int actStride, int k, float* y, int yStride)
    {
        ushort* x = (ushort*)row;
        float* a0 = (float*)act, a1 = (float*)(act + actStride), a2 = (float*)(act + 2 * actStride), a3 = (float*)(act + 3 * actStride);
        Vector256<float> lo0 = default, hi0 = default, lo1 = default, hi1 = default, lo2 = default, hi2 = default, lo3 = default, hi3 = default;
        int i = 0;
        for (; i + 16 <= k; i += 16)
        {
            var wLo = Fp16.Load8(x + i);
            var wHi = Fp16.Load8(x + i + 8);
            lo0 = Fma.MultiplyAdd(wLo, Vector256.Load(a0 + i), lo0); hi0 = Fma.MultiplyAdd(wHi, Vector256.Load(a0 + i + 8), hi0);
            lo1 = Fma.MultiplyAdd(wLo, Vector256.Load(a1 + i), lo1); hi1 = Fma.MultiplyAdd(wHi, Vector256.Load(a1 + i + 8), hi1);
            lo2 = Fma.MultiplyAdd(wLo, Vector256.Load(a2 + i), lo2); hi2 = Fma.MultiplyAdd(wHi, Vector256.Load(a2 + i + 8), hi2);
            lo3 = Fma.MultiplyAdd(wLo, Vector256.Load(a3 + i), lo3); hi3 = Fma.MultiplyAdd(wHi, Vector256.Load(a3 + i + 8), hi3);
        }
        float s0 = Simd.HSum(lo0 + hi0), s1 = Simd.HSum(lo1 + hi1), s2 = Simd.HSum(lo2 + hi2), s3 = Simd.HSum(lo3 + hi3);
        for (; i < k; i++)
        {
            float w = Fp16.ToSingle(x[i]);
            s0 += w * a0[i]; s1 += w * a1[i]; s2 += w * a2[i]; s3 += w * a3[i];
        }
        y[0] = s0; y[yStride] = s1; y[2 * yStride] = s2; y[3 * yStride] = s3;
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

    private protected override float DotCore(byte* row, byte* act, int k)
    {
        ushort* x = (ushort*)row, y = (ushort*)act;
        int i = 0;
        float sum = 0;
        if (Simd.Avx2Fma)
        {
            // llama.cpp's order on a CPU with AVX512-BF16 (tinyBLAS over vdpbf16ps): 16 float lanes, lane j
            // taking elements 2j+1 then 2j of each 32, each product exact in float and each add rounded,
            // then _mm512_reduce_add_ps. Lanes 0-7 come from the first 16 elements, 8-15 from the next 16.
            Vector256<float> lo = default, hi = default;
            for (; i + 32 <= k; i += 32)
            {
                lo = Simd.DotBF16Pairs(x + i, y + i, lo);
                hi = Simd.DotBF16Pairs(x + i + 16, y + i + 16, hi);
            }
            sum = Simd.HSum(lo + hi);
        }
        else if (Simd.V128)
        {
            Vector128<float> a0 = default, a1 = default;
            for (; i + 8 <= k; i += 8)
            {
                var vx = Vector128.Load(x + i);
                var vy = Vector128.Load(y + i);
                a0 += (Vector128.WidenLower(vx) << 16).AsSingle() * (Vector128.WidenLower(vy) << 16).AsSingle();
                a1 += (Vector128.WidenUpper(vx) << 16).AsSingle() * (Vector128.WidenUpper(vy) << 16).AsSingle();
            }
            sum = Vector128.Sum(a0 + a1);
        }
        for (; i < k; i++) sum += Fp16.BF16ToSingle(x[i]) * Fp16.BF16ToSingle(y[i]);
        return sum;
    }

    /// <summary>Prompt form: each 32 weights are split into their odd and even halves once for four tokens, in
    /// <see cref="Simd.DotBF16Pairs"/>'s order, so every (row, token) gets the bits of <see cref="DotCore"/>.</summary>
    internal override void MatMulCore(byte* weights, long rowBytes, int k, byte* acts, int actStride, int tokens,
        float* y, int yStride, int rowStart, int rowEnd)
    {
        if (Simd.Avx2Fma) MatMulInGroupsOfFour(weights, rowBytes, k, acts, actStride, tokens, y, yStride, rowStart, rowEnd, &Dot4);
        else base.MatMulCore(weights, rowBytes, k, acts, actStride, tokens, y, yStride, rowStart, rowEnd);
    }

    static void Dot4(byte* row, byte* act, int actStride, int k, float* y, int yStride)
    {
        ushort* x = (ushort*)row;
        ushort* a0 = (ushort*)act, a1 = (ushort*)(act + actStride), a2 = (ushort*)(act + 2 * actStride), a3 = (ushort*)(act + 3 * actStride);
        Vector256<float> lo0 = default, hi0 = default, lo1 = default, hi1 = default, lo2 = default, hi2 = default, lo3 = default, hi3 = default;
        var high = Vector256.Create(0xFFFF0000u);
        int i = 0;
        for (; i + 32 <= k; i += 32)
        {
            var wLo = Vector256.Load((uint*)(x + i));
            var wHi = Vector256.Load((uint*)(x + i + 16));
            Vector256<float> oddLo = (wLo & high).AsSingle(), evenLo = (wLo << 16).AsSingle();
            Vector256<float> oddHi = (wHi & high).AsSingle(), evenHi = (wHi << 16).AsSingle();
            lo0 = Pairs(oddLo, evenLo, a0 + i, lo0); hi0 = Pairs(oddHi, evenHi, a0 + i + 16, hi0);
            lo1 = Pairs(oddLo, evenLo, a1 + i, lo1); hi1 = Pairs(oddHi, evenHi, a1 + i + 16, hi1);
            lo2 = Pairs(oddLo, evenLo, a2 + i, lo2); hi2 = Pairs(oddHi, evenHi, a2 + i + 16, hi2);
            lo3 = Pairs(oddLo, evenLo, a3 + i, lo3); hi3 = Pairs(oddHi, evenHi, a3 + i + 16, hi3);
        }
        float s0 = Simd.HSum(lo0 + hi0), s1 = Simd.HSum(lo1 + hi1), s2 = Simd.HSum(lo2 + hi2), s3 = Simd.HSum(lo3 + hi3);
        for (; i < k; i++)
        {
            float w = Fp16.BF16ToSingle(x[i]);
            s0 += w * Fp16.BF16ToSingle(a0[i]); s1 += w * Fp16.BF16ToSingle(a1[i]);
            s2 += w * Fp16.BF16ToSingle(a2[i]); s3 += w * Fp16.BF16ToSingle(a3[i]);
        }
        y[0] = s0; y[yStride] = s1; y[2 * yStride] = s2; y[3 * yStride] = s3;
    }

    /// <summary><see cref="Simd.DotBF16Pairs"/> with the weight halves already split: (acc + odd products) + even products.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Pairs(Vector256<float> odd, Vector256<float> even, ushort* act, Vector256<float> acc)
    {
        var v = Vector256.Load((uint*)act);
        return (acc + odd * (v & Vector256.Create(0xFFFF0000u)).AsSingle()) + even * (v << 16).AsSingle();
    }
}
