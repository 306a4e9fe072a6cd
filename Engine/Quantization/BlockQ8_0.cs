using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Formats;

namespace Engine.Quantization;

/// <summary>block_q8_0: 32 int8 quants with one f16 scale; value = d * q. Also the activation format of
/// Q4_0, Q5_0, Q8_0 and IQ4_NL.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ8_0
{
    public const int QK = 32;
    public Half D;
    public fixed sbyte Qs[QK];
}

internal sealed unsafe class Q8_0Format : ByteBlockFormat<Q8_0Bytes>, IWeightQuantizer
{
    public static readonly Q8_0Format Instance = new();
    Q8_0Format() : base(GgmlType.Q8_0) { }

    /// <summary>quantize_row_q8_0_ref, the weight quantizer llama-quantize uses: d = amax/127,
    /// q = roundf(x/d) (halves away from zero).</summary>
    internal static void Quantize(float* x, BlockQ8_0* y, int k)
    {
        int nb = k / BlockQ8_0.QK;
        for (int i = 0; i < nb; i++, x += BlockQ8_0.QK)
        {
            float amax = 0;
            for (int j = 0; j < BlockQ8_0.QK; j++) amax = Math.Max(amax, MathF.Abs(x[j]));
            float d = amax / 127;
            float id = d != 0 ? 1.0f / d : 0.0f;
            y[i].D = (Half)d;
            for (int j = 0; j < BlockQ8_0.QK; j++) y[i].Qs[j] = (sbyte)QuantMath.RoundAway(x[j] * id);
        }
    }

    /// <summary>The activation quantizer of llama.cpp's x86 CPU backend (quantize_row_q8_0 built with AVX):
    /// it multiplies by 127/amax rather than 1/d and rounds halves to even. That differs from
    /// <see cref="Quantize"/> only on exact ties, but ties are common when an activation row has few
    /// distinct values (a row of a 4-bit embedding after RMSNorm), and one flipped level early in the
    /// network moves the logits well past rounding noise. Scalar and vector paths give identical bytes.</summary>
    internal static void QuantizeActivations(float* x, BlockQ8_0* y, int k)
    {
        int nb = k / BlockQ8_0.QK;
        for (int i = 0; i < nb; i++, x += BlockQ8_0.QK)
        {
            float amax = QuantMath.AbsMax32(x);
            y[i].D = (Half)(amax / 127);
            float id = amax != 0 ? 127f / amax : 0f;
            QuantMath.ScaleRoundToInt8x32(x, id, y[i].Qs);
        }
    }

    public void QuantizeRowReference(ReadOnlySpan<float> x, Span<byte> dst)
    {
        if (x.Length % BlockQ8_0.QK != 0 || dst.Length < RowBytes(x.Length)) throw new ArgumentException("bad row length");
        fixed (float* s = x) fixed (byte* d = dst) Quantize(s, (BlockQ8_0*)d, x.Length);
    }

    /// <summary>ggml's quantize_q8_0 ignores importance weights: the reference quantizer.</summary>
    public void QuantizeRowWeighted(ReadOnlySpan<float> x, Span<byte> dst, ReadOnlySpan<float> importance) => QuantizeRowReference(x, dst);

    private protected override void DequantizeReferenceCore(byte* row, float* dst, int k)
    {
        var x = (BlockQ8_0*)row;
        for (int i = 0; i < k / BlockQ8_0.QK; i++)
        {
            float d = Fp16.ToSingle(x[i].D);
            for (int j = 0; j < BlockQ8_0.QK; j++) dst[i * BlockQ8_0.QK + j] = x[i].Qs[j] * d;
        }
    }

    private protected override void DequantizeCore(byte* row, float* dst, int k)
    {
        if (!Vector256.IsHardwareAccelerated) { DequantizeReferenceCore(row, dst, k); return; }
        var x = (BlockQ8_0*)row;
        for (int i = 0; i < k / BlockQ8_0.QK; i++, dst += BlockQ8_0.QK)
        {
            var d = Vector256.Create(Fp16.ToSingle(x[i].D));
            var q = Vector256.Load(x[i].Qs);
            var (s0, s1) = Vector256.Widen(q);
            var (i0, i1) = Vector256.Widen(s0);
            var (i2, i3) = Vector256.Widen(s1);
            (Vector256.ConvertToSingle(i0) * d).Store(dst);
            (Vector256.ConvertToSingle(i1) * d).Store(dst + 8);
            (Vector256.ConvertToSingle(i2) * d).Store(dst + 16);
            (Vector256.ConvertToSingle(i3) * d).Store(dst + 24);
        }
    }

    /// <summary>ggml_vec_dot_q8_0_q8_0_generic.</summary>
    private protected override float DotReferenceCore(byte* row, byte* act, int k)
    {
        var x = (BlockQ8_0*)row;
        var y = (BlockQ8_0*)act;
        float sumf = 0;
        for (int ib = 0; ib < k / BlockQ8_0.QK; ib++)
        {
            int sumi = 0;
            for (int j = 0; j < BlockQ8_0.QK; j++) sumi += x[ib].Qs[j] * y[ib].Qs[j];
            sumf += sumi * (Fp16.ToSingle(x[ib].D) * Fp16.ToSingle(y[ib].D));
        }
        return sumf;
    }

    private protected override float DotWithoutAvx2(byte* row, byte* act, int k)
    {
        var x = (BlockQ8_0*)row;
        var y = (BlockQ8_0*)act;
        int nb = k / BlockQ8_0.QK;
        if (Simd.V128)
        {
            float sumf = 0;
            for (int ib = 0; ib < nb; ib++)
            {
                // |2 products| <= 2 * 128 * 127 fits an int16 pair sum; each is widened before adding.
                var p = V128Dot.AddPairs(V128Dot.PairSumsSigned(Vector128.Load(x[ib].Qs), y[ib].Qs))
                      + V128Dot.AddPairs(V128Dot.PairSumsSigned(Vector128.Load(x[ib].Qs + 16), y[ib].Qs + 16));
                sumf += Vector128.Sum(p) * (Fp16.ToSingle(x[ib].D) * Fp16.ToSingle(y[ib].D));
            }
            return sumf;
        }
        return DotReferenceCore(row, act, k);
    }
}

/// <summary>block_q8_0 seen by the shared kernel: the quants are the signed bytes themselves.</summary>
internal unsafe struct Q8_0Bytes : IByteBlockWeights
{
    public static int BlockBytes => sizeof(BlockQ8_0);
    public static Vector256<sbyte> Quants(byte* block) => Vector256.Load(((BlockQ8_0*)block)->Qs);
    public static float Scale(byte* block) => Fp16.ToSingle(((BlockQ8_0*)block)->D);
}
