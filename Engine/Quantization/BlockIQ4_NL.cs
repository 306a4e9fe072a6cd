using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Formats;

namespace Engine.Quantization;

/// <summary>block_iq4_nl: 32 4-bit indices into a fixed non-linear codebook and an f16 scale; value =
/// d * kvalues[q]. Nibble layout as Q4_0.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockIQ4_NL
{
    public const int QK = 32;
    public Half D;
    public fixed byte Qs[QK / 2];

    /// <summary>kvalues_iq4nl from ggml-common.h.</summary>
    internal static ReadOnlySpan<sbyte> KValues => [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

    /// <summary>The codebook in both 128-bit lanes, for a byte shuffle lookup.</summary>
    internal static Vector256<sbyte> KValuesVector
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            var v = Vector128.Create((sbyte)-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
            return Vector256.Create(v, v);
        }
    }

    /// <summary>32 codebook values for the 32 nibbles of 16 bytes (low nibbles first).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<sbyte> Lookup32(byte* qs) => Avx2.Shuffle(KValuesVector, Simd.Nibbles32(qs).AsSByte());
}

internal sealed unsafe class IQ4_NLFormat : ByteBlockFormat<IQ4_NLBytes>, IWeightQuantizer
{
    /// <summary>What llama-quantize writes: quantize_iq4_nl without weights (7 scale tries). ggml's
    /// quantize_row_iq4_nl_ref differs for IQ4_NL (no tries), but no file is made with it.</summary>
    public void QuantizeRowReference(ReadOnlySpan<float> x, Span<byte> dst) => IQ4Quantizer.QuantizeRow(GgmlType.IQ4_NL, x, dst, default);

    public static readonly IQ4_NLFormat Instance = new();
    IQ4_NLFormat() : base(GgmlType.IQ4_NL) { }

    private protected override void DequantizeReferenceCore(byte* row, float* dst, int k)
    {
        var x = (BlockIQ4_NL*)row;
        var kv = BlockIQ4_NL.KValues;
        for (int i = 0; i < k / BlockIQ4_NL.QK; i++, dst += BlockIQ4_NL.QK)
        {
            float d = Fp16.ToSingle(x[i].D);
            for (int j = 0; j < 16; j++)
            {
                dst[j] = d * kv[x[i].Qs[j] & 0xF];
                dst[j + 16] = d * kv[x[i].Qs[j] >> 4];
            }
        }
    }

    public void QuantizeRowWeighted(ReadOnlySpan<float> x, Span<byte> dst, ReadOnlySpan<float> importance)
    {
        if (importance.Length != x.Length) throw new ArgumentException($"{importance.Length} importance values for a row of {x.Length}", nameof(importance));
        IQ4Quantizer.QuantizeRow(GgmlType.IQ4_NL, x, dst, importance);
    }

    private protected override void DequantizeCore(byte* row, float* dst, int k)
    {
        if (!Avx2.IsSupported) { DequantizeReferenceCore(row, dst, k); return; }
        var x = (BlockIQ4_NL*)row;
        for (int i = 0; i < k / BlockIQ4_NL.QK; i++, dst += BlockIQ4_NL.QK)
            Q4_0Format.Store32(BlockIQ4_NL.Lookup32(x[i].Qs), Vector256.Create(Fp16.ToSingle(x[i].D)), dst);
    }

    /// <summary>ggml_vec_dot_iq4_nl_q8_0_generic.</summary>
    private protected override float DotReferenceCore(byte* row, byte* act, int k)
    {
        var x = (BlockIQ4_NL*)row;
        var y = (BlockQ8_0*)act;
        var kv = BlockIQ4_NL.KValues;
        float sumf = 0;
        for (int ib = 0; ib < k / BlockIQ4_NL.QK; ib++)
        {
            float d = Fp16.ToSingle(y[ib].D) * Fp16.ToSingle(x[ib].D);
            int sumi1 = 0, sumi2 = 0;
            for (int j = 0; j < 16; j++)
            {
                sumi1 += y[ib].Qs[j] * kv[x[ib].Qs[j] & 0xF];
                sumi2 += y[ib].Qs[j + 16] * kv[x[ib].Qs[j] >> 4];
            }
            sumf += d * (sumi1 + sumi2);
        }
        return sumf;
    }

    /// <summary>Without AVX2: the codebook looked up by byte shuffle, the reference's integer exactly, and its float
    /// order (one scalar accumulator, d * sumi per block).</summary>
    private protected override float DotWithoutAvx2(byte* row, byte* act, int k)
    {
        if (!Simd.V128) return DotReferenceCore(row, act, k);
        var x = (BlockIQ4_NL*)row;
        var y = (BlockQ8_0*)act;
        var kv = Vector128.Create((sbyte)-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
        float sumf = 0;
        for (int ib = 0; ib < k / BlockIQ4_NL.QK; ib++)
        {
            float d = Fp16.ToSingle(y[ib].D) * Fp16.ToSingle(x[ib].D);
            V128Dot.Nibbles(x[ib].Qs, out var lo, out var hi);
            // |codebook value * q8| <= 127 * 127: a pair of products fits int16, so widen each pair sum.
            var p = V128Dot.AddPairs(V128Dot.PairSumsSigned(Vector128.ShuffleNative(kv, lo.AsSByte()), y[ib].Qs))
                  + V128Dot.AddPairs(V128Dot.PairSumsSigned(Vector128.ShuffleNative(kv, hi.AsSByte()), y[ib].Qs + 16));
            sumf += d * Vector128.Sum(p);
        }
        return sumf;
    }
}

/// <summary>block_iq4_nl seen by the shared kernel: nibbles looked up in the non-linear table.</summary>
internal unsafe struct IQ4_NLBytes : IByteBlockWeights
{
    public static int BlockBytes => sizeof(BlockIQ4_NL);
    public static Vector256<sbyte> Quants(byte* block) => BlockIQ4_NL.Lookup32(((BlockIQ4_NL*)block)->Qs);
    public static float Scale(byte* block) => Fp16.ToSingle(((BlockIQ4_NL*)block)->D);
}
