using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Formats;

namespace Engine.Quantization;

/// <summary>block_q4_1: 32 4-bit quants with an f16 scale and min; value = d * q + m. Its activations are Q8_1,
/// whose s = d * sum(q) turns the min term into one multiply per block.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ4_1
{
    public const int QK = 32;
    public Half D;
    public Half M;
    public fixed byte Qs[QK / 2];
}

internal sealed unsafe class Q4_1Format : RowFormat, IWeightQuantizer
{
    public static readonly Q4_1Format Instance = new();
    Q4_1Format() : base(GgmlType.Q4_1, GgmlType.Q8_1) { }

    /// <summary>quantize_row_q4_1_ref.</summary>
    public void QuantizeRowReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        if (src.Length % BlockQ4_1.QK != 0 || dst.Length < RowBytes(src.Length)) throw new ArgumentException("bad row length");
        fixed (float* xp = src) fixed (byte* yp = dst)
        {
            float* x = xp;
            var y = (BlockQ4_1*)yp;
            for (int i = 0; i < src.Length / BlockQ4_1.QK; i++, x += BlockQ4_1.QK)
            {
                float min = float.MaxValue, max = -float.MaxValue;
                for (int j = 0; j < BlockQ4_1.QK; j++)
                {
                    if (x[j] < min) min = x[j];
                    if (x[j] > max) max = x[j];
                }
                float d = (max - min) / 15;
                float id = d != 0 ? 1.0f / d : 0.0f;
                y[i].D = (Half)d;
                y[i].M = (Half)min;
                for (int j = 0; j < 16; j++)
                {
                    int q0 = Math.Min(15, (int)((x[j] - min) * id + 0.5f));
                    int q1 = Math.Min(15, (int)((x[j + 16] - min) * id + 0.5f));
                    y[i].Qs[j] = (byte)(q0 | (q1 << 4));
                }
            }
        }
    }

    /// <summary>quantize_row_q4_1_impl: per block, make_qkx3_quants (a scale and a min) weighted by
    /// importance * sqrt(sigma2 + x^2), where sigma2 is the mean square of the whole row.</summary>
    public void QuantizeRowWeighted(ReadOnlySpan<float> src, Span<byte> dst, ReadOnlySpan<float> importance)
    {
        WeightedRow.Check(src, dst, importance, BlockQ4_1.QK, RowBytes(src.Length));
        float* weight = stackalloc float[BlockQ4_1.QK];
        byte* L = stackalloc byte[BlockQ4_1.QK];
        byte* Laux = stackalloc byte[BlockQ4_1.QK];
        fixed (float* xp = src) fixed (float* qwp = importance) fixed (byte* yp = dst)
        {
            var y = (BlockQ4_1*)yp;
            float sigma2 = WeightedRow.MeanSquare(xp, src.Length);
            for (int ib = 0; ib < src.Length / BlockQ4_1.QK; ib++)
            {
                float* xb = xp + BlockQ4_1.QK * ib;
                WeightedRow.Weights(xb, qwp + BlockQ4_1.QK * ib, sigma2, weight, BlockQ4_1.QK);
                float d = QuantMath.MakeQkx3Quants(BlockQ4_1.QK, 15, xb, weight, L, out float min, Laux, -0.9f, 0.05f, 36, false);
                y[ib].D = (Half)d;
                y[ib].M = (Half)(-min);
                for (int j = 0; j < 16; j++) y[ib].Qs[j] = (byte)(L[j] | (L[j + 16] << 4));
            }
        }
    }

    private protected override void QuantizeActivationsCore(float* x, byte* dst, int k) => BlockQ8_1.QuantizeActivations(x, (BlockQ8_1*)dst, k);

    private protected override void DequantizeReferenceCore(byte* row, float* dst, int k)
    {
        var x = (BlockQ4_1*)row;
        for (int i = 0; i < k / BlockQ4_1.QK; i++, dst += BlockQ4_1.QK)
        {
            float d = Fp16.ToSingle(x[i].D), m = Fp16.ToSingle(x[i].M);
            for (int j = 0; j < 16; j++)
            {
                dst[j] = (x[i].Qs[j] & 0x0F) * d + m;
                dst[j + 16] = (x[i].Qs[j] >> 4) * d + m;
            }
        }
    }

    private protected override void DequantizeCore(byte* row, float* dst, int k)
    {
        if (!Avx2.IsSupported) { DequantizeReferenceCore(row, dst, k); return; }
        var x = (BlockQ4_1*)row;
        for (int i = 0; i < k / BlockQ4_1.QK; i++, dst += BlockQ4_1.QK)
            Q5_1Format.StoreAffine(Simd.Nibbles32(x[i].Qs), Fp16.ToSingle(x[i].D), Fp16.ToSingle(x[i].M), dst);
    }

    /// <summary>ggml_vec_dot_q4_1_q8_1_generic.</summary>
    private protected override float DotReferenceCore(byte* row, byte* act, int k)
    {
        var x = (BlockQ4_1*)row;
        var y = (BlockQ8_1*)act;
        float sumf = 0;
        for (int ib = 0; ib < k / BlockQ4_1.QK; ib++)
        {
            int sumi0 = 0, sumi1 = 0;
            for (int j = 0; j < 16; j++)
            {
                sumi0 += (x[ib].Qs[j] & 0x0F) * y[ib].Qs[j];
                sumi1 += (x[ib].Qs[j] >> 4) * y[ib].Qs[j + 16];
            }
            int sumi = sumi0 + sumi1;
            sumf += (Fp16.ToSingle(x[ib].D) * Fp16.ToSingle(y[ib].D)) * sumi + Fp16.ToSingle(x[ib].M) * Fp16.ToSingle(y[ib].S);
        }
        return sumf;
    }

    private protected override float DotCore(byte* row, byte* act, int k)
    {
        if (!Simd.Avx2Fma) return Simd.V128 ? DotV128(row, act, k) : DotReferenceCore(row, act, k);
        var x = (BlockQ4_1*)row;
        var y = (BlockQ8_1*)act;
        Vector256<float> acc = default;
        float summs = 0;
        for (int ib = 0; ib < k / BlockQ4_1.QK; ib++)
        {
            summs += Fp16.ToSingle(x[ib].M) * Fp16.ToSingle(y[ib].S);
            var p = Simd.DotU8I8(Simd.Nibbles32(x[ib].Qs), Vector256.Load(y[ib].Qs));
            acc = Fma.MultiplyAdd(Vector256.Create(Fp16.ToSingle(x[ib].D) * Fp16.ToSingle(y[ib].D)), Avx.ConvertToVector256Single(p), acc);
        }
        return Simd.HSum(acc) + summs;
    }

    /// <summary>The portable dot (no AVX2): the reference's per-block integer as int32 lanes times d_x * d_y, and
    /// the min terms m * s summed apart, as in the AVX2 path.</summary>
    static float DotV128(byte* row, byte* act, int k)
    {
        var x = (BlockQ4_1*)row;
        var y = (BlockQ8_1*)act;
        Vector128<float> acc = default;
        float summs = 0;
        for (int ib = 0; ib < k / BlockQ4_1.QK; ib++)
        {
            summs += Fp16.ToSingle(x[ib].M) * Fp16.ToSingle(y[ib].S);
            V128Dot.Nibbles(x[ib].Qs, out var lo, out var hi);
            var sumi = V128Dot.AddPairs(V128Dot.PairSumsUnsigned(lo, y[ib].Qs) + V128Dot.PairSumsUnsigned(hi, y[ib].Qs + 16));
            acc += Vector128.Create(Fp16.ToSingle(x[ib].D) * Fp16.ToSingle(y[ib].D)) * Vector128.ConvertToSingle(sumi);
        }
        return Vector128.Sum(acc) + summs;
    }
}
