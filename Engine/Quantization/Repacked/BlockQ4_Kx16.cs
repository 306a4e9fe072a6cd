using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static Engine.Quantization.QuantMath;

namespace Engine.Quantization.Repacked;

/// <summary>
/// One Q4_K super-block (256 columns) of 16 consecutive rows for 512-bit kernels: two <see cref="BlockQ4_Kx8"/>
/// (rows 0-7 and 8-15) interleaved 32 bytes at a time, so that every 64-byte load holds the same 32 bytes of both
/// and one instruction works on 16 rows (4 quant bytes of each). A 256-bit load of two separate 8-row groups
/// joined into one vector measured 35% slower in the prompt tile: the join costs what the wider multiply saves.
/// 2304 bytes, exactly the 16 source blocks.
///
/// Half x (0: rows 0-7, 1: rows 8-15) of the 8-row block's fields sits at: D[8x + j], DMin[8x + j];
/// Low[32x + n] (its Low[n]) and Low[64 + 32x + n] (its Low[32 + n]); High[32x + n]; Qs[64c + 32x + n] (its
/// Qs[32c + n]). So the 512-bit vectors SA, SB, MA, MB of the 8-row kernels' scales and mins are built from
/// Low[0..64), Low[64..128) and High with the same shifts, the two halves' rows in the two 256-bit lanes.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ4_Kx16
{
    public const int Rows = 16;
    public const int Size = 2304;

    /// <summary>fp16 bits of each row's d (scale of the scales).</summary>
    public fixed ushort D[Rows];
    /// <summary>fp16 bits of each row's dmin (scale of the mins).</summary>
    public fixed ushort DMin[Rows];
    public fixed byte Low[128];
    public fixed byte High[64];
    public fixed byte Qs[Rows * QK_K / 2];

    /// <summary>Builds the block of super-block `block` of 16 rows: row j starts at src + j * rowBytes.</summary>
    internal static void Pack(byte* src, long rowBytes, int block, BlockQ4_Kx16* dst)
    {
        BlockQ4_Kx8 half;
        for (int x = 0; x < 2; x++)
        {
            BlockQ4_Kx8.Pack(src + 8 * x * rowBytes, rowBytes, block, &half);
            for (int j = 0; j < 8; j++)
            {
                dst->D[8 * x + j] = half.D[j];
                dst->DMin[8 * x + j] = half.DMin[j];
            }
            for (int n = 0; n < 32; n++)
            {
                dst->Low[32 * x + n] = half.Low[n];
                dst->Low[64 + 32 * x + n] = half.Low[32 + n];
                dst->High[32 * x + n] = half.High[n];
            }
            for (int c = 0; c < 32; c++)
                for (int n = 0; n < 32; n++)
                    dst->Qs[64 * c + 32 * x + n] = half.Qs[32 * c + n];
        }
    }

    /// <summary>Row j's 6-bit scale of sub-block s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Scale(BlockQ4_Kx16* g, int j, int s)
    {
        int x = j >> 3, n = 4 * (j & 7) + (s & 3), half = s >> 2;
        return (g->Low[64 * half + 32 * x + n] & 0xF) | (((g->High[32 * x + n] >> (2 * half)) & 3) << 4);
    }

    /// <summary>Row j's 6-bit min of sub-block s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Min(BlockQ4_Kx16* g, int j, int s)
    {
        int x = j >> 3, n = 4 * (j & 7) + (s & 3), half = s >> 2;
        return (g->Low[64 * half + 32 * x + n] >> 4) | (((g->High[32 * x + n] >> (4 + 2 * half)) & 3) << 4);
    }

    /// <summary>Row j's 4-bit quant e (0-31) of sub-block s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Quant(BlockQ4_Kx16* g, int j, int s, int e)
    {
        int p = s / 2, x = j >> 3;
        byte q = g->Qs[512 * p + 64 * (e / 4) + 32 * x + 4 * (j & 7) + e % 4];
        return (s & 1) == 0 ? q & 0xF : q >> 4;
    }

    /// <summary>Row j of this block as 256 floats, with the arithmetic of Q4_K's reference dequantization
    /// (d * scale * q - dmin * min, products rounded as there), so the values are the source row's exactly.</summary>
    internal void Dequantize(int j, float* y)
    {
        fixed (BlockQ4_Kx16* g = &this)
        {
            float d = Fp16.ToSingle(g->D[j]), dmin = Fp16.ToSingle(g->DMin[j]);
            for (int s = 0; s < 8; s++)
            {
                float scale = d * Scale(g, j, s), min = dmin * Min(g, j, s);
                for (int e = 0; e < 32; e++) y[32 * s + e] = scale * Quant(g, j, s, e) - min;
            }
        }
    }
}
