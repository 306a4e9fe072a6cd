using System.Runtime.InteropServices;
using static Engine.Quantization.QuantMath;

namespace Engine.Quantization.Repacked;

/// <summary>
/// One Q4_K super-block (256 columns) of 8 consecutive rows, re-laid out so that a kernel computes the 8 rows
/// together: every 32-byte load holds 4 quant bytes of each row, so one broadcast of 4 activation bytes serves
/// all 8 rows and the output lanes are the rows (no horizontal sums). The idea is llama.cpp's block_q4_Kx8; the
/// layout is ours, chosen for AVX2 (32-bit row interleave, scales and mins unpacked to bytes).
///
/// Row j of the group is source row (8g + j). For quant pair p (sub-blocks 2p and 2p + 1, source qs[32p, 32p+32))
/// and quarter i (source bytes [32p + 4i, 32p + 4i + 4)): Qs[256p + 32i + 4j + b] = row j's qs[32p + 4i + b].
/// Their low nibbles are elements 64p + 4i + b, their high nibbles elements 64p + 32 + 4i + b, as in the source.
/// Scales and mins are the 6-bit values unpacked: Scales[16p + 2j + h] is row j's scale of sub-block 2p + h,
/// Mins likewise; a pair's 16 bytes widen to the int16 lanes that pmaddwd needs. Unpacking costs 32 bytes per
/// group (1184 instead of 8 x 144 = 1152) and saves a 6-bit unshuffle per row and super-block in the kernel.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ4_Kx8
{
    public const int Rows = 8;
    public const int Size = 1184;

    /// <summary>fp16 bits of each row's d (scale of the scales).</summary>
    public fixed ushort D[Rows];
    /// <summary>fp16 bits of each row's dmin (scale of the mins).</summary>
    public fixed ushort DMin[Rows];
    public fixed byte Scales[64];
    public fixed byte Mins[64];
    public fixed byte Qs[Rows * QK_K / 2];

    /// <summary>Builds the group of super-block `block` of 8 rows: row j starts at src + j * rowBytes.</summary>
    internal static void Pack(byte* src, long rowBytes, int block, BlockQ4_Kx8* dst)
    {
        for (int j = 0; j < Rows; j++)
        {
            var x = (BlockQ4_K*)(src + j * rowBytes) + block;
            dst->D[j] = BitConverter.HalfToUInt16Bits(x->D);
            dst->DMin[j] = BitConverter.HalfToUInt16Bits(x->DMin);
            BlockQ4_K.UnpackScales(x->Scales, out ulong scales, out ulong mins);
            for (int s = 0; s < 8; s++)
            {
                int at = 16 * (s / 2) + 2 * j + (s & 1);
                dst->Scales[at] = (byte)(scales >> (8 * s));
                dst->Mins[at] = (byte)(mins >> (8 * s));
            }
            for (int p = 0; p < 4; p++)
                for (int i = 0; i < 8; i++)
                    *(uint*)(dst->Qs + 256 * p + 32 * i + 4 * j) = *(uint*)(x->Qs + 32 * p + 4 * i);
        }
    }

    /// <summary>Row j of this group as 256 floats, with the arithmetic of Q4_K's reference dequantization
    /// (d * scale * q - dmin * min, products rounded as there), so the values are the source row's exactly.</summary>
    internal void Dequantize(int j, float* y)
    {
        fixed (BlockQ4_Kx8* g = &this)
        {
            float d = Fp16.ToSingle(g->D[j]), dmin = Fp16.ToSingle(g->DMin[j]);
            for (int s = 0; s < 8; s++)
            {
                int p = s / 2, h = s & 1, at = 16 * p + 2 * j + h;
                float scale = d * g->Scales[at], min = dmin * g->Mins[at];
                for (int e = 0; e < 32; e++)
                {
                    byte q = g->Qs[256 * p + 32 * (e / 4) + 4 * j + e % 4];
                    y[32 * s + e] = scale * (h == 0 ? q & 0xF : q >> 4) - min;
                }
            }
        }
    }
}
