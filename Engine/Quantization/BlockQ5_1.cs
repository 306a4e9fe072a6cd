using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Formats;

namespace Engine.Quantization;

/// <summary>block_q5_1: 32 5-bit quants with an f16 scale and min; value = d * q + m. Bit layout as Q5_0.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ5_1
{
    public const int QK = 32;
    public Half D;
    public Half M;
    public fixed byte Qh[4];
    public fixed byte Qs[QK / 2];
}

internal sealed unsafe class Q5_1Format : RowFormat, IWeightQuantizer
{
    public static readonly Q5_1Format Instance = new();
    Q5_1Format() : base(GgmlType.Q5_1, GgmlType.Q8_1) { }

    /// <summary>quantize_row_q5_1_ref.</summary>
    public void QuantizeRowReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        if (src.Length % BlockQ5_1.QK != 0 || dst.Length < RowBytes(src.Length)) throw new ArgumentException("bad row length");
        fixed (float* xp = src) fixed (byte* yp = dst)
        {
            float* x = xp;
            var y = (BlockQ5_1*)yp;
            for (int i = 0; i < src.Length / BlockQ5_1.QK; i++, x += BlockQ5_1.QK)
            {
                float min = float.MaxValue, max = -float.MaxValue;
                for (int j = 0; j < BlockQ5_1.QK; j++)
                {
                    if (x[j] < min) min = x[j];
                    if (x[j] > max) max = x[j];
                }
                float d = (max - min) / 31;
                float id = d != 0 ? 1.0f / d : 0.0f;
                y[i].D = (Half)d;
                y[i].M = (Half)min;
                uint qh = 0;
                for (int j = 0; j < 16; j++)
                {
                    int q0 = (byte)((x[j] - min) * id + 0.5f);
                    int q1 = (byte)((x[j + 16] - min) * id + 0.5f);
                    y[i].Qs[j] = (byte)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
                    qh |= (uint)((q0 & 0x10) >> 4) << j;
                    qh |= (uint)((q1 & 0x10) >> 4) << (j + 16);
                }
                Unsafe.WriteUnaligned(y[i].Qh, qh);
            }
        }
    }

    /// <summary>quantize_row_q5_1_impl: as Q4_1's, with 32 levels.</summary>
    public void QuantizeRowWeighted(ReadOnlySpan<float> src, Span<byte> dst, ReadOnlySpan<float> importance)
    {
        WeightedRow.Check(src, dst, importance, BlockQ5_1.QK, RowBytes(src.Length));
        float* weight = stackalloc float[BlockQ5_1.QK];
        byte* L = stackalloc byte[BlockQ5_1.QK];
        byte* Laux = stackalloc byte[BlockQ5_1.QK];
        fixed (float* xp = src) fixed (float* qwp = importance) fixed (byte* yp = dst)
        {
            var y = (BlockQ5_1*)yp;
            float sigma2 = WeightedRow.MeanSquare(xp, src.Length);
            for (int ib = 0; ib < src.Length / BlockQ5_1.QK; ib++)
            {
                float* xb = xp + BlockQ5_1.QK * ib;
                WeightedRow.Weights(xb, qwp + BlockQ5_1.QK * ib, sigma2, weight, BlockQ5_1.QK);
                float d = QuantMath.MakeQkx3Quants(BlockQ5_1.QK, 31, xb, weight, L, out float min, Laux, -0.9f, 0.05f, 36, false);
                y[ib].D = (Half)d;
                y[ib].M = (Half)(-min);
                uint qh = 0;
                for (int j = 0; j < 16; j++)
                {
                    int q0 = L[j], q1 = L[j + 16];
                    y[ib].Qs[j] = (byte)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
                    qh |= (uint)((q0 & 0x10) >> 4) << j;
                    qh |= (uint)((q1 & 0x10) >> 4) << (j + 16);
                }
                Unsafe.WriteUnaligned(y[ib].Qh, qh);
            }
        }
    }

    private protected override void QuantizeActivationsCore(float* x, byte* dst, int k) => BlockQ8_1.QuantizeActivations(x, (BlockQ8_1*)dst, k);

    private protected override void DequantizeReferenceCore(byte* row, float* dst, int k)
    {
        var x = (BlockQ5_1*)row;
        for (int i = 0; i < k / BlockQ5_1.QK; i++, dst += BlockQ5_1.QK)
        {
            float d = Fp16.ToSingle(x[i].D), m = Fp16.ToSingle(x[i].M);
            uint qh = Unsafe.ReadUnaligned<uint>(x[i].Qh);
            for (int j = 0; j < 16; j++)
            {
                int xh0 = (int)((qh >> j) << 4) & 0x10;
                int xh1 = (int)(qh >> (j + 12)) & 0x10;
                dst[j] = ((x[i].Qs[j] & 0x0F) | xh0) * d + m;
                dst[j + 16] = ((x[i].Qs[j] >> 4) | xh1) * d + m;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<byte> Quants(BlockQ5_1* b)
        => Simd.Nibbles32(b->Qs) | (Simd.BytesFromBits32(Unsafe.ReadUnaligned<uint>(b->Qh)) & Vector256.Create((byte)0x10));

    /// <summary>dst[i] = q[i] * d + m for 32 unsigned bytes, multiply then add (no FMA) to match the reference.</summary>
    internal static void StoreAffine(Vector256<byte> q, float d, float m, float* dst)
    {
        var dv = Vector256.Create(d);
        var mv = Vector256.Create(m);
        var (s0, s1) = Vector256.Widen(q);
        var (i0, i1) = Vector256.Widen(s0);
        var (i2, i3) = Vector256.Widen(s1);
        (Vector256.ConvertToSingle(i0.AsInt32()) * dv + mv).Store(dst);
        (Vector256.ConvertToSingle(i1.AsInt32()) * dv + mv).Store(dst + 8);
        (Vector256.ConvertToSingle(i2.AsInt32()) * dv + mv).Store(dst + 16);
        (Vector256.ConvertToSingle(i3.AsInt32()) * dv + mv).Store(dst + 24);
    }

    private protected override void DequantizeCore(byte* row, float* dst, int k)
    {
        if (!Avx2.IsSupported) { DequantizeReferenceCore(row, dst, k); return; }
        var x = (BlockQ5_1*)row;
        for (int i = 0; i < k / BlockQ5_1.QK; i++, dst += BlockQ5_1.QK)
            StoreAffine(Quants(x + i), Fp16.ToSingle(x[i].D), Fp16.ToSingle(x[i].M), dst);
    }

    /// <summary>ggml_vec_dot_q5_1_q8_1_generic.</summary>
    private protected override float DotReferenceCore(byte* row, byte* act, int k)
    {
        var x = (BlockQ5_1*)row;
        var y = (BlockQ8_1*)act;
        float sumf = 0;
        for (int ib = 0; ib < k / BlockQ5_1.QK; ib++)
        {
            uint qh = Unsafe.ReadUnaligned<uint>(x[ib].Qh);
            int sumi0 = 0, sumi1 = 0;
            for (int j = 0; j < 16; j++)
            {
                int xh0 = (int)((qh >> j) << 4) & 0x10;
                int xh1 = (int)(qh >> (j + 12)) & 0x10;
                sumi0 += ((x[ib].Qs[j] & 0xF) | xh0) * y[ib].Qs[j];
                sumi1 += ((x[ib].Qs[j] >> 4) | xh1) * y[ib].Qs[j + 16];
            }
            int sumi = sumi0 + sumi1;
            sumf += (Fp16.ToSingle(x[ib].D) * Fp16.ToSingle(y[ib].D)) * sumi + Fp16.ToSingle(x[ib].M) * Fp16.ToSingle(y[ib].S);
        }
        return sumf;
    }

    private protected override float DotCore(byte* row, byte* act, int k)
    {
        if (!Simd.Avx2Fma) return Simd.V128 ? DotV128(row, act, k) : DotReferenceCore(row, act, k);
        var x = (BlockQ5_1*)row;
        var y = (BlockQ8_1*)act;
        Vector256<float> acc = default;
        float summs = 0;
        for (int ib = 0; ib < k / BlockQ5_1.QK; ib++)
        {
            summs += Fp16.ToSingle(x[ib].M) * Fp16.ToSingle(y[ib].S);
            var p = Simd.DotU8I8(Quants(x + ib), Vector256.Load(y[ib].Qs));
            acc = Fma.MultiplyAdd(Vector256.Create(Fp16.ToSingle(x[ib].D) * Fp16.ToSingle(y[ib].D)), Avx.ConvertToVector256Single(p), acc);
        }
        return Simd.HSum(acc) + summs;
    }

    /// <summary>The portable dot (no AVX2): the reference's per-block integer (unsigned 5-bit values against the
    /// Q8_1 quants, |4 products| &lt;= 4 * 31 * 128) as int32 lanes times d_x * d_y, and the min terms summed apart.</summary>
    static float DotV128(byte* row, byte* act, int k)
    {
        var x = (BlockQ5_1*)row;
        var y = (BlockQ8_1*)act;
        var b4 = Vector128.Create((byte)0x10);
        Vector128<float> acc = default;
        float summs = 0;
        for (int ib = 0; ib < k / BlockQ5_1.QK; ib++)
        {
            summs += Fp16.ToSingle(x[ib].M) * Fp16.ToSingle(y[ib].S);
            uint qh = Unsafe.ReadUnaligned<uint>(x[ib].Qh);
            V128Dot.Nibbles(x[ib].Qs, out var lo, out var hi);
            lo |= V128Dot.BytesFromBits16(qh) & b4;
            hi |= V128Dot.BytesFromBits16(qh >> 16) & b4;
            var sumi = V128Dot.AddPairs(V128Dot.PairSumsUnsigned(lo, y[ib].Qs) + V128Dot.PairSumsUnsigned(hi, y[ib].Qs + 16));
            acc += Vector128.Create(Fp16.ToSingle(x[ib].D) * Fp16.ToSingle(y[ib].D)) * Vector128.ConvertToSingle(sumi);
        }
        return Vector128.Sum(acc) + summs;
    }
}
