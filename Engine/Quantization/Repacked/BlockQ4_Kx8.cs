using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static Engine.Quantization.QuantMath;

namespace Engine.Quantization.Repacked;

/// <summary>
/// One Q4_K super-block (256 columns) of 8 consecutive rows, re-laid out so that a kernel computes the 8 rows
/// together: every 32-byte load holds 4 quant bytes of each row, so one broadcast of 4 activation bytes serves
/// all 8 rows and the output lanes are the rows (no horizontal sums). The idea is llama.cpp's block_q4_Kx8; the
/// layout is ours, chosen for AVX2 (32-bit row interleave; scales and mins grouped so in-lane byte shuffles
/// place them). 1152 bytes, exactly the 8 source blocks: decode streams the weights from memory, so every byte
/// counts.
///
/// Quants: row j of the group is source row (8g + j). For quant pair p (sub-blocks 2p and 2p + 1, source
/// qs[32p, 32p + 32)) and quarter i (source bytes [32p + 4i, 32p + 4i + 4)): Qs[256p + 32i + 4j + b] = row j's
/// qs[32p + 4i + b]. Their low nibbles are elements 64p + 4i + b, their high nibbles 64p + 32 + 4i + b.
///
/// Scales and mins (6 bits each, 64 + 64): think of four 32-byte vectors SA, SB (scales of sub-blocks 0-3 and
/// 4-7) and MA, MB (mins), each with row j's four values at bytes 4j .. 4j + 3, so rows 0-3 sit in the low
/// 128-bit lane and rows 4-7 in the high one, where the rows' int32 lanes are. They are stored split: Low[n]
/// holds the low 4 bits of SA[n] (low nibble) and MA[n] (high nibble), Low[32 + n] those of SB[n] and MB[n];
/// High[n] holds the top 2 bits of SA[n], SB[n], MA[n], MB[n] at bits 0, 2, 4, 6. A kernel rebuilds the four
/// vectors with a few shifts and masks per super-block.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ4_Kx8
{
    public const int Rows = 8;
    public const int Size = 1152;

    /// <summary>fp16 bits of each row's d (scale of the scales).</summary>
    public fixed ushort D[Rows];
    /// <summary>fp16 bits of each row's dmin (scale of the mins).</summary>
    public fixed ushort DMin[Rows];
    public fixed byte Low[64];
    public fixed byte High[32];
    public fixed byte Qs[Rows * QK_K / 2];

    /// <summary>Builds the group of super-block `block` of 8 rows: row j starts at src + j * rowBytes.</summary>
    internal static void Pack(byte* src, long rowBytes, int block, BlockQ4_Kx8* dst)
    {
        for (int n = 0; n < 32; n++) dst->High[n] = 0;
        for (int j = 0; j < Rows; j++)
        {
            var x = (BlockQ4_K*)(src + j * rowBytes) + block;
            dst->D[j] = BitConverter.HalfToUInt16Bits(x->D);
            dst->DMin[j] = BitConverter.HalfToUInt16Bits(x->DMin);
            BlockQ4_K.UnpackScales(x->Scales, out ulong scales, out ulong mins);
            for (int s = 0; s < 8; s++)
            {
                int n = 4 * j + (s & 3), half = s >> 2; // half 0: SA / MA, half 1: SB / MB
                int sc = (int)(scales >> (8 * s)) & 63, m = (int)(mins >> (8 * s)) & 63;
                dst->Low[32 * half + n] = (byte)((sc & 0xF) | ((m & 0xF) << 4));
                dst->High[n] |= (byte)(((sc >> 4) << (2 * half)) | ((m >> 4) << (4 + 2 * half)));
            }
            for (int p = 0; p < 4; p++)
                for (int i = 0; i < 8; i++)
                    *(uint*)(dst->Qs + 256 * p + 32 * i + 4 * j) = *(uint*)(x->Qs + 32 * p + 4 * i);
        }
    }

    /// <summary>Row j's 6-bit scale of sub-block s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Scale(BlockQ4_Kx8* g, int j, int s)
    {
        int n = 4 * j + (s & 3), half = s >> 2;
        return (g->Low[32 * half + n] & 0xF) | (((g->High[n] >> (2 * half)) & 3) << 4);
    }

    /// <summary>Row j's 6-bit min of sub-block s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Min(BlockQ4_Kx8* g, int j, int s)
    {
        int n = 4 * j + (s & 3), half = s >> 2;
        return (g->Low[32 * half + n] >> 4) | (((g->High[n] >> (4 + 2 * half)) & 3) << 4);
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
                int p = s / 2, h = s & 1;
                float scale = d * Scale(g, j, s), min = dmin * Min(g, j, s);
                for (int e = 0; e < 32; e++)
                {
                    byte q = g->Qs[256 * p + 32 * (e / 4) + 4 * j + e % 4];
                    y[32 * s + e] = scale * (h == 0 ? q & 0xF : q >> 4) - min;
                }
            }
        }
    }
}
