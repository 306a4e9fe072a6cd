using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static Engine.Quantization.QuantMath;

namespace Engine.Quantization.Repacked;

/// <summary>
/// One Q6_K super-block (256 columns) of 8 consecutive rows, re-laid out so that a kernel computes the 8 rows
/// together, as <see cref="BlockQ4_Kx8"/> does for Q4_K: every 32-byte vector of quants holds 4 consecutive
/// elements of each row (row j at bytes 4j .. 4j + 3), so one broadcast of 4 activation bytes serves all 8 rows
/// and the rows' results land in the 8 int32 lanes. 1680 bytes, exactly the 8 source blocks.
///
/// Elements are taken 16 at a time, one sub-block s (elements 16s .. 16s + 15, one int8 scale) in four
/// quarters c (elements 16s + 4c + b, b = 0..3); quarter c of row j sits at bytes 4j + b of its vector. Each
/// sub-block takes 96 bytes of Qs, in the order a kernel reads them (so decode streams through the group; with
/// the low bits and the high bits in two planes it ran at a third of the speed from memory):
/// - Qs[96s + 32v + 4j + b] (v = 0, 1): low nibble = low 4 bits of quarter v, high nibble = those of quarter v + 2;
/// - Qs[96s + 64 + 4j + b]: the top 2 bits of quarters 0, 1, 2, 3 at bits 0, 2, 4, 6.
/// So three loads rebuild the sub-block's four quant vectors with the same shifts and masks as the row kernel's
/// unpacking (<see cref="Q6_KFormat"/>).
/// - Scales[16p + 2j + t] = row j's scale of sub-block 2p + t: sign-extending 16 bytes (vpmovsxbw) gives rows
///   0-3 in the low 128-bit lane and 4-7 in the high one, int32 lane j = (scale[2p], scale[2p + 1]), which a
///   pmaddwd by a broadcast pair of bsums turns into the -32 offset term, and one vpshufb into either scale in
///   both int16 halves of lane j.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ6_Kx8
{
    public const int Rows = 8;
    public const int Size = 1680;

    /// <summary>fp16 bits of each row's d.</summary>
    public fixed ushort D[Rows];
    public fixed sbyte Scales[Rows * QK_K / 16];
    /// <summary>Per sub-block s: 64 bytes of low bits, then 32 of high bits.</summary>
    public fixed byte Qs[Rows * QK_K * 3 / 4];

    /// <summary>Row j's 6-bit quant (0..63) of element e, from the source block's split bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int SourceQuant(BlockQ6_K* x, int e)
    {
        int half = e / 128, r = e % 128, l = r % 32, which = r / 32; // which: 0 low of ql[l], 1 low of ql[l+32], 2 high of ql[l], 3 high of ql[l+32]
        byte ql = x->Ql[64 * half + l + 32 * (which & 1)];
        int low = which < 2 ? ql & 0xF : ql >> 4;
        return low | (((x->Qh[32 * half + l] >> (2 * which)) & 3) << 4);
    }

    /// <summary>Builds the group of super-block `block` of 8 rows: row j starts at src + j * rowBytes.</summary>
    internal static void Pack(byte* src, long rowBytes, int block, BlockQ6_Kx8* dst)
    {
        for (int j = 0; j < Rows; j++)
        {
            var x = (BlockQ6_K*)(src + j * rowBytes) + block;
            dst->D[j] = BitConverter.HalfToUInt16Bits(x->D);
            for (int s = 0; s < 16; s++)
                dst->Scales[16 * (s / 2) + 2 * j + (s & 1)] = x->Scales[s];
            for (int s = 0; s < 16; s++)
                for (int b = 0; b < 4; b++)
                {
                    int q0 = SourceQuant(x, 16 * s + b), q1 = SourceQuant(x, 16 * s + 4 + b);
                    int q2 = SourceQuant(x, 16 * s + 8 + b), q3 = SourceQuant(x, 16 * s + 12 + b);
                    dst->Qs[96 * s + 4 * j + b] = (byte)((q0 & 0xF) | ((q2 & 0xF) << 4));
                    dst->Qs[96 * s + 32 + 4 * j + b] = (byte)((q1 & 0xF) | ((q3 & 0xF) << 4));
                    dst->Qs[96 * s + 64 + 4 * j + b] = (byte)((q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6));
                }
        }
    }

    /// <summary>Row j's int8 scale of sub-block s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Scale(BlockQ6_Kx8* g, int j, int s) => g->Scales[16 * (s / 2) + 2 * j + (s & 1)];

    /// <summary>Row j's 6-bit quant (0..63) of element e.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Quant(BlockQ6_Kx8* g, int j, int e)
    {
        int s = e / 16, c = (e / 4) % 4, b = e % 4;
        byte ql = g->Qs[96 * s + 32 * (c & 1) + 4 * j + b];
        int low = c < 2 ? ql & 0xF : ql >> 4;
        return low | (((g->Qs[96 * s + 64 + 4 * j + b] >> (2 * c)) & 3) << 4);
    }

    /// <summary>Row j of this group as 256 floats, with the arithmetic of Q6_K's reference dequantization
    /// (d * scale * (q - 32), left to right), so the values are the source row's exactly.</summary>
    internal void Dequantize(int j, float* y)
    {
        fixed (BlockQ6_Kx8* g = &this)
        {
            float d = Fp16.ToSingle(g->D[j]);
            for (int e = 0; e < QK_K; e++)
                y[e] = d * Scale(g, j, e / 16) * (Quant(g, j, e) - 32);
        }
    }
}
