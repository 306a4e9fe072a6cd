using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Formats;
using static Engine.Quantization.QuantMath;

namespace Engine.Quantization;

/// <summary>block_iq4_xs: IQ4_NL's codebook over a 256-element super-block of 8 sub-blocks of 32, each with a
/// 6-bit scale (low 4 bits in scales_l, high 2 in scales_h); value = d * (ls - 32) * kvalues[q].</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockIQ4_XS
{
    public Half D;
    public ushort ScalesH;
    public fixed byte ScalesL[QK_K / 64];
    public fixed byte Qs[QK_K / 2];

    /// <summary>The 6-bit scale of sub-block ib, minus 32.</summary>
    internal int Scale(int ib) => (((ScalesL[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((ScalesH >> (2 * ib)) & 3) << 4)) - 32;
}

internal sealed unsafe class IQ4_XSFormat : RowFormat, IWeightQuantizer
{
    /// <summary>What llama-quantize writes: quantize_iq4_xs without weights (7 scale tries). ggml's
    /// quantize_row_iq4_xs_ref differs for IQ4_NL (no tries), but no file is made with it.</summary>
    public void QuantizeRowReference(ReadOnlySpan<float> x, Span<byte> dst) => IQ4Quantizer.QuantizeRow(GgmlType.IQ4_XS, x, dst, default);

    public static readonly IQ4_XSFormat Instance = new();
    IQ4_XSFormat() : base(GgmlType.IQ4_XS, GgmlType.Q8_K) { }

    private protected override void QuantizeActivationsCore(float* x, byte* dst, int k) => BlockQ8_K.Quantize(x, (BlockQ8_K*)dst, k);

    private protected override void DequantizeReferenceCore(byte* row, float* y, int k)
    {
        var x = (BlockIQ4_XS*)row;
        var kv = BlockIQ4_NL.KValues;
        for (int i = 0; i < k / QK_K; i++)
        {
            byte* qs = x[i].Qs;
            float d = Fp16.ToSingle(x[i].D);
            for (int ib = 0; ib < QK_K / 32; ib++, y += 32, qs += 16)
            {
                float dl = d * x[i].Scale(ib);
                for (int j = 0; j < 16; j++)
                {
                    y[j] = dl * kv[qs[j] & 0xF];
                    y[j + 16] = dl * kv[qs[j] >> 4];
                }
            }
        }
    }

    public void QuantizeRowWeighted(ReadOnlySpan<float> x, Span<byte> dst, ReadOnlySpan<float> importance)
    {
        if (importance.Length != x.Length) throw new ArgumentException($"{importance.Length} importance values for a row of {x.Length}", nameof(importance));
        IQ4Quantizer.QuantizeRow(GgmlType.IQ4_XS, x, dst, importance);
    }

    private protected override void DequantizeCore(byte* row, float* y, int k)
    {
        if (!Avx2.IsSupported) { DequantizeReferenceCore(row, y, k); return; }
        var x = (BlockIQ4_XS*)row;
        for (int i = 0; i < k / QK_K; i++)
        {
            float d = Fp16.ToSingle(x[i].D);
            for (int ib = 0; ib < QK_K / 32; ib++, y += 32)
                Q4_0Format.Store32(BlockIQ4_NL.Lookup32(x[i].Qs + 16 * ib), Vector256.Create(d * x[i].Scale(ib)), y);
        }
    }

    /// <summary>ggml_vec_dot_iq4_xs_q8_K_generic.</summary>
    private protected override float DotReferenceCore(byte* row, byte* act, int k)
    {
        var x = (BlockIQ4_XS*)row;
        var y = (BlockQ8_K*)act;
        var kv = BlockIQ4_NL.KValues;
        float sumf = 0;
        for (int ibl = 0; ibl < k / QK_K; ibl++)
        {
            float d4d8 = Fp16.ToSingle(x[ibl].D) * y[ibl].D;
            byte* qs = x[ibl].Qs;
            sbyte* q8 = y[ibl].Qs;
            for (int ib = 0; ib < QK_K / 32; ib++, qs += 16, q8 += 32)
            {
                float dl = d4d8 * x[ibl].Scale(ib);
                int sumi1 = 0, sumi2 = 0;
                for (int j = 0; j < 16; j++)
                {
                    sumi1 += q8[j] * kv[qs[j] & 0xF];
                    sumi2 += q8[j + 16] * kv[qs[j] >> 4];
                }
                sumf += dl * (sumi1 + sumi2);
            }
        }
        return sumf;
    }

    private protected override float DotCore(byte* row, byte* act, int k)
    {
        if (!Simd.Avx2Fma) return Simd.V128 ? DotV128(row, act, k) : DotReferenceCore(row, act, k);
        var x = (BlockIQ4_XS*)row;
        var y = (BlockQ8_K*)act;
        Vector256<float> acc = default;
        for (int ibl = 0; ibl < k / QK_K; ibl++)
        {
            Vector256<int> sumi = default;
            for (int ib = 0; ib < QK_K / 32; ib++)
            {
                var p = Simd.DotI8I8(BlockIQ4_NL.Lookup32(x[ibl].Qs + 16 * ib), Vector256.Load(y[ibl].Qs + 32 * ib));
                sumi += Avx2.MultiplyLow(p, Vector256.Create(x[ibl].Scale(ib)));
            }
            acc = Fma.MultiplyAdd(Vector256.Create(Fp16.ToSingle(x[ibl].D) * y[ibl].D), Avx.ConvertToVector256Single(sumi), acc);
        }
        return Simd.HSum(acc);
    }

    /// <summary>The portable dot (no AVX2), as the AVX2 one: codebook lookups by byte shuffle, each sub-block's
    /// integer dot times its scale summed exactly in int32 lanes, then d * float(lanes) per super-block.</summary>
    static float DotV128(byte* row, byte* act, int k)
    {
        var x = (BlockIQ4_XS*)row;
        var y = (BlockQ8_K*)act;
        var kv = Vector128.Create((sbyte)-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
        Vector128<float> acc = default;
        for (int ibl = 0; ibl < k / QK_K; ibl++)
        {
            Vector128<int> sumi = default;
            byte* qs = x[ibl].Qs;
            sbyte* q8 = y[ibl].Qs;
            for (int ib = 0; ib < QK_K / 32; ib++, qs += 16, q8 += 32)
            {
                V128Dot.Nibbles(qs, out var lo, out var hi);
                // |codebook value * q8| <= 127 * 127: a pair of products fits int16, two pairs do not, so widen each.
                var p = V128Dot.AddPairs(V128Dot.PairSumsSigned(Vector128.ShuffleNative(kv, lo.AsSByte()), q8))
                      + V128Dot.AddPairs(V128Dot.PairSumsSigned(Vector128.ShuffleNative(kv, hi.AsSByte()), q8 + 16));
                sumi += p * Vector128.Create(x[ibl].Scale(ib));
            }
            acc += Vector128.Create(Fp16.ToSingle(x[ibl].D) * y[ibl].D) * Vector128.ConvertToSingle(sumi);
        }
        return Vector128.Sum(acc);
    }
}
