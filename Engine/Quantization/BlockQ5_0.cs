using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Formats;

namespace Engine.Quantization;

/// <summary>block_q5_0: 32 5-bit quants and an f16 scale; value = d * (q - 16). Low 4 bits as in Q4_0, the fifth
/// bit of element j is bit j of the little-endian qh word.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ5_0
{
    public const int QK = 32;
    public Half D;
    public fixed byte Qh[4];
    public fixed byte Qs[QK / 2];
}

internal sealed unsafe class Q5_0Format : ByteBlockFormat<Q5_0Bytes>, IWeightQuantizer
{
    public static readonly Q5_0Format Instance = new();
    Q5_0Format() : base(GgmlType.Q5_0) { }

    /// <summary>quantize_row_q5_0_ref: the signed extreme maps to -16 exactly.</summary>
    public void QuantizeRowReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        if (src.Length % BlockQ5_0.QK != 0 || dst.Length < RowBytes(src.Length)) throw new ArgumentException("bad row length");
        fixed (float* xp = src) fixed (byte* yp = dst)
        {
            float* x = xp;
            var y = (BlockQ5_0*)yp;
            for (int i = 0; i < src.Length / BlockQ5_0.QK; i++, x += BlockQ5_0.QK)
            {
                float amax = 0, max = 0;
                for (int j = 0; j < BlockQ5_0.QK; j++)
                    if (amax < MathF.Abs(x[j])) { amax = MathF.Abs(x[j]); max = x[j]; }
                float d = max / -16;
                float id = d != 0 ? 1.0f / d : 0.0f;
                y[i].D = (Half)d;
                uint qh = 0;
                for (int j = 0; j < 16; j++)
                {
                    int q0 = Math.Min(31, (int)(x[j] * id + 16.5f));
                    int q1 = Math.Min(31, (int)(x[j + 16] * id + 16.5f));
                    y[i].Qs[j] = (byte)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
                    qh |= (uint)((q0 & 0x10) >> 4) << j;
                    qh |= (uint)((q1 & 0x10) >> 4) << (j + 16);
                }
                Unsafe.WriteUnaligned(y[i].Qh, qh);
            }
        }
    }

    /// <summary>quantize_row_q5_0_impl: as Q4_0's, with 32 levels.</summary>
    public void QuantizeRowWeighted(ReadOnlySpan<float> src, Span<byte> dst, ReadOnlySpan<float> importance)
    {
        WeightedRow.Check(src, dst, importance, BlockQ5_0.QK, RowBytes(src.Length));
        float* weight = stackalloc float[BlockQ5_0.QK];
        sbyte* L = stackalloc sbyte[BlockQ5_0.QK];
        fixed (float* xp = src) fixed (float* qwp = importance) fixed (byte* yp = dst)
        {
            var y = (BlockQ5_0*)yp;
            float sigma2 = WeightedRow.MeanSquare(xp, src.Length);
            for (int ib = 0; ib < src.Length / BlockQ5_0.QK; ib++)
            {
                float* xb = xp + BlockQ5_0.QK * ib;
                WeightedRow.Weights(xb, qwp + BlockQ5_0.QK * ib, sigma2, weight, BlockQ5_0.QK);
                float d = QuantMath.MakeQxQuants(BlockQ5_0.QK, 16, xb, L, 1, weight);
                y[ib].D = (Half)d;
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

    private protected override void DequantizeReferenceCore(byte* row, float* dst, int k)
    {
        var x = (BlockQ5_0*)row;
        for (int i = 0; i < k / BlockQ5_0.QK; i++, dst += BlockQ5_0.QK)
        {
            float d = Fp16.ToSingle(x[i].D);
            uint qh = Unsafe.ReadUnaligned<uint>(x[i].Qh);
            for (int j = 0; j < 16; j++)
            {
                int xh0 = (int)((qh >> j) << 4) & 0x10;
                int xh1 = (int)(qh >> (j + 12)) & 0x10;
                dst[j] = (((x[i].Qs[j] & 0x0F) | xh0) - 16) * d;
                dst[j + 16] = (((x[i].Qs[j] >> 4) | xh1) - 16) * d;
            }
        }
    }

    /// <summary>The 32 signed quants of a block: the nibble, minus 16 where the fifth bit is clear (OR-ing 0xF0
    /// into a nibble n gives the int8 n - 16).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<sbyte> Quants(BlockQ5_0* b)
    {
        var high = Simd.BytesFromBits32(Unsafe.ReadUnaligned<uint>(b->Qh));
        return (Simd.Nibbles32(b->Qs) | Vector256.AndNot(Vector256.Create((byte)0xF0), high)).AsSByte();
    }

    private protected override void DequantizeCore(byte* row, float* dst, int k)
    {
        if (!Avx2.IsSupported) { DequantizeReferenceCore(row, dst, k); return; }
        var x = (BlockQ5_0*)row;
        for (int i = 0; i < k / BlockQ5_0.QK; i++, dst += BlockQ5_0.QK)
            Q4_0Format.Store32(Quants(x + i), Vector256.Create(Fp16.ToSingle(x[i].D)), dst);
    }

    /// <summary>ggml_vec_dot_q5_0_q8_0_generic.</summary>
    private protected override float DotReferenceCore(byte* row, byte* act, int k)
    {
        var x = (BlockQ5_0*)row;
        var y = (BlockQ8_0*)act;
        float sumf = 0;
        for (int ib = 0; ib < k / BlockQ5_0.QK; ib++)
        {
            uint qh = Unsafe.ReadUnaligned<uint>(x[ib].Qh);
            int sumi0 = 0, sumi1 = 0;
            for (int j = 0; j < 16; j++)
            {
                int xh0 = (int)(((qh & (1u << j)) >> j) << 4);
                int xh1 = (int)((qh & (1u << (j + 16))) >> (j + 12));
                int x0 = (sbyte)(((x[ib].Qs[j] & 0x0F) | xh0) - 16);
                int x1 = (sbyte)(((x[ib].Qs[j] >> 4) | xh1) - 16);
                sumi0 += x0 * y[ib].Qs[j];
                sumi1 += x1 * y[ib].Qs[j + 16];
            }
            int sumi = sumi0 + sumi1;
            sumf += (Fp16.ToSingle(x[ib].D) * Fp16.ToSingle(y[ib].D)) * sumi;
        }
        return sumf;
    }

    /// <summary>Without AVX2: the reference's per-block integer (5-bit values minus 16, signed, against the Q8_0
    /// quants) as int32 lanes, times d_x * d_y, in a float vector accumulator.</summary>
    private protected override float DotWithoutAvx2(byte* row, byte* act, int k)
    {
        if (!Simd.V128) return DotReferenceCore(row, act, k);
        var x = (BlockQ5_0*)row;
        var y = (BlockQ8_0*)act;
        var f0 = Vector128.Create((byte)0xF0);
        Vector128<float> acc = default;
        for (int ib = 0; ib < k / BlockQ5_0.QK; ib++)
        {
            uint qh = Unsafe.ReadUnaligned<uint>(x[ib].Qh);
            V128Dot.Nibbles(x[ib].Qs, out var lo, out var hi);
            // OR-ing 0xF0 into a nibble n where the fifth bit is clear gives the int8 n - 16; |4 products| <= 4 * 16 * 128.
            lo |= Vector128.AndNot(f0, V128Dot.BytesFromBits16(qh));
            hi |= Vector128.AndNot(f0, V128Dot.BytesFromBits16(qh >> 16));
            var sumi = V128Dot.AddPairs(V128Dot.PairSumsSigned(lo.AsSByte(), y[ib].Qs) + V128Dot.PairSumsSigned(hi.AsSByte(), y[ib].Qs + 16));
            acc += Vector128.Create(Fp16.ToSingle(x[ib].D) * Fp16.ToSingle(y[ib].D)) * Vector128.ConvertToSingle(sumi);
        }
        return Vector128.Sum(acc);
    }
}

/// <summary>block_q5_0 seen by the shared kernel: 5-bit values minus 16.</summary>
internal unsafe struct Q5_0Bytes : IByteBlockWeights
{
    public static int BlockBytes => sizeof(BlockQ5_0);
    public static Vector256<sbyte> Quants(byte* block) => Q5_0Format.Quants((BlockQ5_0*)block);
    public static float Scale(byte* block) => Fp16.ToSingle(((BlockQ5_0*)block)->D);
}
