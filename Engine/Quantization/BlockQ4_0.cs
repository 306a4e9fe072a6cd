using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Formats;

namespace Engine.Quantization;

/// <summary>block_q4_0: 32 4-bit quants and an f16 scale; value = d * (q - 8). Byte j holds element j in its
/// low nibble and element j + 16 in its high nibble.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ4_0
{
    public const int QK = 32;
    public Half D;
    public fixed byte Qs[QK / 2];
}

internal sealed unsafe class Q4_0Format : ByteBlockFormat<Q4_0Bytes>, IWeightQuantizer
{
    public static readonly Q4_0Format Instance = new();
    Q4_0Format() : base(GgmlType.Q4_0) { }

    /// <summary>quantize_row_q4_0_ref: the signed value of largest magnitude maps to -8 exactly.</summary>
    public void QuantizeRowReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        if (src.Length % BlockQ4_0.QK != 0 || dst.Length < RowBytes(src.Length)) throw new ArgumentException("bad row length");
        fixed (float* xp = src) fixed (byte* yp = dst)
        {
            float* x = xp;
            var y = (BlockQ4_0*)yp;
            for (int i = 0; i < src.Length / BlockQ4_0.QK; i++, x += BlockQ4_0.QK)
            {
                float amax = 0, max = 0;
                for (int j = 0; j < BlockQ4_0.QK; j++)
                    if (amax < MathF.Abs(x[j])) { amax = MathF.Abs(x[j]); max = x[j]; }
                float d = max / -8;
                float id = d != 0 ? 1.0f / d : 0.0f;
                y[i].D = (Half)d;
                for (int j = 0; j < BlockQ4_0.QK / 2; j++)
                {
                    int q0 = Math.Min(15, (int)(x[j] * id + 8.5f));
                    int q1 = Math.Min(15, (int)(x[j + 16] * id + 8.5f));
                    y[i].Qs[j] = (byte)(q0 | (q1 << 4));
                }
            }
        }
    }

    /// <summary>quantize_row_q4_0_impl: per block, make_qx_quants weighted by importance * sqrt(sigma2 + x^2), where
    /// sigma2 is the mean square of the whole row.</summary>
    public void QuantizeRowWeighted(ReadOnlySpan<float> src, Span<byte> dst, ReadOnlySpan<float> importance)
    {
        WeightedRow.Check(src, dst, importance, BlockQ4_0.QK, RowBytes(src.Length));
        float* weight = stackalloc float[BlockQ4_0.QK];
        sbyte* L = stackalloc sbyte[BlockQ4_0.QK];
        fixed (float* xp = src) fixed (float* qwp = importance) fixed (byte* yp = dst)
        {
            var y = (BlockQ4_0*)yp;
            float sigma2 = WeightedRow.MeanSquare(xp, src.Length);
            for (int ib = 0; ib < src.Length / BlockQ4_0.QK; ib++)
            {
                float* xb = xp + BlockQ4_0.QK * ib;
                WeightedRow.Weights(xb, qwp + BlockQ4_0.QK * ib, sigma2, weight, BlockQ4_0.QK);
                float d = QuantMath.MakeQxQuants(BlockQ4_0.QK, 8, xb, L, 1, weight);
                y[ib].D = (Half)d;
                for (int j = 0; j < 16; j++) y[ib].Qs[j] = (byte)((byte)L[j] | ((byte)L[j + 16] << 4));
            }
        }
    }

    private protected override void DequantizeReferenceCore(byte* row, float* dst, int k)
    {
        var x = (BlockQ4_0*)row;
        for (int i = 0; i < k / BlockQ4_0.QK; i++, dst += BlockQ4_0.QK)
        {
            float d = Fp16.ToSingle(x[i].D);
            for (int j = 0; j < BlockQ4_0.QK / 2; j++)
            {
                dst[j] = ((x[i].Qs[j] & 0x0F) - 8) * d;
                dst[j + 16] = ((x[i].Qs[j] >> 4) - 8) * d;
            }
        }
    }

    private protected override void DequantizeCore(byte* row, float* dst, int k)
    {
        if (!Avx2.IsSupported) { DequantizeReferenceCore(row, dst, k); return; }
        var x = (BlockQ4_0*)row;
        for (int i = 0; i < k / BlockQ4_0.QK; i++, dst += BlockQ4_0.QK)
        {
            var d = Vector256.Create(Fp16.ToSingle(x[i].D));
            var q = (Simd.Nibbles32(x[i].Qs) - Vector256.Create((byte)8)).AsSByte();
            Store32(q, d, dst);
        }
    }

    /// <summary>Writes 32 int8 values times d as floats.</summary>
    internal static void Store32(Vector256<sbyte> q, Vector256<float> d, float* dst)
    {
        var (s0, s1) = Vector256.Widen(q);
        var (i0, i1) = Vector256.Widen(s0);
        var (i2, i3) = Vector256.Widen(s1);
        (Vector256.ConvertToSingle(i0) * d).Store(dst);
        (Vector256.ConvertToSingle(i1) * d).Store(dst + 8);
        (Vector256.ConvertToSingle(i2) * d).Store(dst + 16);
        (Vector256.ConvertToSingle(i3) * d).Store(dst + 24);
    }

    /// <summary>ggml_vec_dot_q4_0_q8_0_generic.</summary>
    private protected override float DotReferenceCore(byte* row, byte* act, int k)
    {
        var x = (BlockQ4_0*)row;
        var y = (BlockQ8_0*)act;
        float sumf = 0;
        for (int ib = 0; ib < k / BlockQ4_0.QK; ib++)
        {
            int sumi0 = 0, sumi1 = 0;
            for (int j = 0; j < BlockQ4_0.QK / 2; j++)
            {
                int v0 = (x[ib].Qs[j] & 0x0F) - 8;
                int v1 = (x[ib].Qs[j] >> 4) - 8;
                sumi0 += v0 * y[ib].Qs[j];
                sumi1 += v1 * y[ib].Qs[j + 16];
            }
            int sumi = sumi0 + sumi1;
            sumf += sumi * Fp16.ToSingle(x[ib].D) * Fp16.ToSingle(y[ib].D);
        }
        return sumf;
    }

    private protected override float DotWithoutAvx2(byte* row, byte* act, int k)
    {
        var x = (BlockQ4_0*)row;
        var y = (BlockQ8_0*)act;
        int nb = k / BlockQ4_0.QK;
        if (Simd.V128)
        {
            var mask = Vector128.Create((byte)0x0F);
            var off = Vector128.Create((byte)8);
            float sumf = 0;
            for (int ib = 0; ib < nb; ib++)
            {
                var raw = Vector128.Load(x[ib].Qs);
                var lo = ((raw & mask) - off).AsSByte();
                var hi = ((Vector128.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & mask) - off).AsSByte();
                // |4 products| <= 4 * 8 * 128 fits the int16 pair sums.
                var p = V128Dot.AddPairs(V128Dot.PairSumsSigned(lo, y[ib].Qs) + V128Dot.PairSumsSigned(hi, y[ib].Qs + 16));
                sumf += Vector128.Sum(p) * Fp16.ToSingle(x[ib].D) * Fp16.ToSingle(y[ib].D);
            }
            return sumf;
        }
        return DotReferenceCore(row, act, k);
    }
}

/// <summary>block_q4_0 seen by the shared kernel: nibbles minus 8.</summary>
internal unsafe struct Q4_0Bytes : IByteBlockWeights
{
    public static int BlockBytes => sizeof(BlockQ4_0);
    public static Vector256<sbyte> Quants(byte* block) => (Simd.Nibbles32(((BlockQ4_0*)block)->Qs) - Vector256.Create((byte)8)).AsSByte();
    public static float Scale(byte* block) => Fp16.ToSingle(((BlockQ4_0*)block)->D);
}
