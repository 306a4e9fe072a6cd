using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static Engine.Quantization.QuantMath;

namespace Engine.Quantization.Repacked;

/// <summary>
/// One Q6_K super-block (256 columns) of 16 consecutive rows for 512-bit kernels, as <see cref="BlockQ4_Kx16"/> is
/// for Q4_K: two <see cref="BlockQ6_Kx8"/> (rows 0-7 and 8-15) interleaved, every 64-byte vector holding the same
/// 32 bytes of both. 3360 bytes, exactly the 16 source blocks.
///
/// Half x (0: rows 0-7, 1: rows 8-15) of the 8-row block's fields sits at: D[8x + j]; Scales[32p + 16x + n] (its
/// Scales[16p + n], so sign-extending 32 bytes puts rows 0-7 in the low 256 bits and 8-15 in the high ones, each
/// as the 8-row kernels have them); Qs[192s + 64v + 32x + n] (its Qs[96s + 32v + n], v = 0, 1, 2: the two vectors
/// of low bits and the one of high bits of sub-block s).
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ6_Kx16
{
    public const int Rows = 16;
    public const int Size = 3360;

    /// <summary>fp16 bits of each row's d.</summary>
    public fixed ushort D[Rows];
    public fixed sbyte Scales[Rows * QK_K / 16];
    /// <summary>Per sub-block s: 128 bytes of low bits, then 64 of high bits.</summary>
    public fixed byte Qs[Rows * QK_K * 3 / 4];

    /// <summary>Builds the block of super-block `block` of 16 rows: row j starts at src + j * rowBytes.</summary>
    internal static void Pack(byte* src, long rowBytes, int block, BlockQ6_Kx16* dst)
    {
        BlockQ6_Kx8 half;
        for (int x = 0; x < 2; x++)
        {
            BlockQ6_Kx8.Pack(src + 8 * x * rowBytes, rowBytes, block, &half);
            for (int j = 0; j < 8; j++) dst->D[8 * x + j] = half.D[j];
            for (int p = 0; p < 8; p++)
                for (int n = 0; n < 16; n++)
                    dst->Scales[32 * p + 16 * x + n] = half.Scales[16 * p + n];
            for (int s = 0; s < 16; s++)
                for (int v = 0; v < 3; v++)
                    for (int n = 0; n < 32; n++)
                        dst->Qs[192 * s + 64 * v + 32 * x + n] = half.Qs[96 * s + 32 * v + n];
        }
    }

    /// <summary>Row j's int8 scale of sub-block s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Scale(BlockQ6_Kx16* g, int j, int s) => g->Scales[32 * (s / 2) + 16 * (j >> 3) + 2 * (j & 7) + (s & 1)];

    /// <summary>Row j's 6-bit quant (0..63) of element e.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Quant(BlockQ6_Kx16* g, int j, int e)
    {
        int s = e / 16, c = (e / 4) % 4, b = e % 4, row = 32 * (j >> 3) + 4 * (j & 7) + b;
        byte ql = g->Qs[192 * s + 64 * (c & 1) + row];
        int low = c < 2 ? ql & 0xF : ql >> 4;
        return low | (((g->Qs[192 * s + 128 + row] >> (2 * c)) & 3) << 4);
    }

    /// <summary>Row j of this block as 256 floats, with the arithmetic of Q6_K's reference dequantization
    /// (d * scale * (q - 32), left to right), so the values are the source row's exactly.</summary>
    internal void Dequantize(int j, float* y)
    {
        fixed (BlockQ6_Kx16* g = &this)
        {
            float d = Fp16.ToSingle(g->D[j]);
            for (int e = 0; e < QK_K; e++)
                y[e] = d * Scale(g, j, e / 16) * (Quant(g, j, e) - 32);
        }
    }
}
