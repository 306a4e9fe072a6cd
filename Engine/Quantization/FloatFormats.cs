using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Formats;

namespace Engine.Quantization;

/// <summary>F32 weights, F32 activations. The reference sums float products in double like ggml's generic
/// ggml_vec_dot_f32; the fast path is TensorPrimitives.Dot (float accumulators, every SIMD width).</summary>
public sealed unsafe class F32Format : RowFormat
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
/// accumulated in float (SIMD) or double (reference, as ggml's generic ggml_vec_dot_f16).</summary>
public sealed unsafe class F16Format : RowFormat
{
    public static readonly F16Format Instance = new();
    F16Format() : base(GgmlType.F16, GgmlType.F16) { }

    private protected override void DequantizeReferenceCore(byte* row, float* dst, int k)
    {
        var src = (ushort*)row;
        for (int i = 0; i < k; i++) dst[i] = Fp16.ToSingle(src[i]);
    }

    private protected override void DequantizeCore(byte* row, float* dst, int k)
        => TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(row, k), new Span<float>(dst, k));

    private protected override void QuantizeActivationsCore(float* x, byte* dst, int k)
    {
        var d = (ushort*)dst;
        for (int i = 0; i < k; i++) d[i] = Fp16.FromSingle(x[i]);
    }

    private protected override float DotReferenceCore(byte* row, byte* act, int k)
    {
        ushort* x = (ushort*)row, y = (ushort*)act;
        double sum = 0;
        for (int i = 0; i < k; i++) sum += Fp16.ToSingle(x[i]) * Fp16.ToSingle(y[i]);
        return (float)sum;
    }

    private protected override float DotCore(byte* row, byte* act, int k)
    {
        ushort* x = (ushort*)row, y = (ushort*)act;
        int i = 0;
        float sum = 0;
        if (Simd.Avx2Fma)
        {
            // Four independent accumulators hide the FMA latency (ggml uses the same GGML_F16_STEP of 32).
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 32 <= k; i += 32)
            {
                a0 = Fma.MultiplyAdd(Fp16.Load8(x + i), Fp16.Load8(y + i), a0);
                a1 = Fma.MultiplyAdd(Fp16.Load8(x + i + 8), Fp16.Load8(y + i + 8), a1);
                a2 = Fma.MultiplyAdd(Fp16.Load8(x + i + 16), Fp16.Load8(y + i + 16), a2);
                a3 = Fma.MultiplyAdd(Fp16.Load8(x + i + 24), Fp16.Load8(y + i + 24), a3);
            }
            for (; i + 8 <= k; i += 8)
                a0 = Fma.MultiplyAdd(Fp16.Load8(x + i), Fp16.Load8(y + i), a0);
            sum = Simd.HSum((a0 + a1) + (a2 + a3));
        }
        else if (Simd.V128)
        {
            Vector128<float> a0 = default, a1 = default;
            for (; i + 8 <= k; i += 8)
            {
                var vx = Vector128.Load(x + i);
                var vy = Vector128.Load(y + i);
                a0 += Fp16.ToSingle(Vector128.WidenLower(vx)) * Fp16.ToSingle(Vector128.WidenLower(vy));
                a1 += Fp16.ToSingle(Vector128.WidenUpper(vx)) * Fp16.ToSingle(Vector128.WidenUpper(vy));
            }
            sum = Vector128.Sum(a0 + a1);
        }
        for (; i < k; i++) sum += Fp16.ToSingle(x[i]) * Fp16.ToSingle(y[i]);
        return sum;
    }
}

/// <summary>BF16 weights; activations rounded to BF16 (nearest even), products accumulated in float (SIMD)
/// or double (reference, as ggml's generic ggml_vec_dot_bf16).</summary>
public sealed unsafe class BF16Format : RowFormat
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
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 32 <= k; i += 32)
            {
                a0 = Fma.MultiplyAdd(Fp16.LoadBF8(x + i), Fp16.LoadBF8(y + i), a0);
                a1 = Fma.MultiplyAdd(Fp16.LoadBF8(x + i + 8), Fp16.LoadBF8(y + i + 8), a1);
                a2 = Fma.MultiplyAdd(Fp16.LoadBF8(x + i + 16), Fp16.LoadBF8(y + i + 16), a2);
                a3 = Fma.MultiplyAdd(Fp16.LoadBF8(x + i + 24), Fp16.LoadBF8(y + i + 24), a3);
            }
            for (; i + 8 <= k; i += 8)
                a0 = Fma.MultiplyAdd(Fp16.LoadBF8(x + i), Fp16.LoadBF8(y + i), a0);
            sum = Simd.HSum((a0 + a1) + (a2 + a3));
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
}
