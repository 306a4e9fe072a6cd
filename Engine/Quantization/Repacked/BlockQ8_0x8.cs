using System.Runtime.InteropServices;

namespace Engine.Quantization.Repacked;

/// <summary>
/// One Q8_0 block (32 columns) of 8 consecutive rows, re-laid out as <see cref="BlockQ4_0x8"/> is: every 32-byte
/// load holds 4 quant bytes of each row, so one broadcast of 4 activation bytes serves all 8 rows and the int32
/// lanes are the rows. 272 bytes, exactly the 8 source blocks.
///
/// Row j of the group is source row (8g + j). Quarter i (elements [4i, 4i + 4)): Qs[32i + 4j + b] = row j's
/// qs[4i + b] XOR 0x80, that is q + 128 as an unsigned byte: vpdpbusd multiplies unsigned by signed bytes into
/// int32 lanes without saturating, so the kernels multiply q + 128 by the signed activations and subtract
/// 128 * sum(activations of the block), an integer formed once per token and block for all the rows (as the
/// Q4_0 layout takes off its 8).
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ8_0x8
{
    public const int Rows = 8;
    public const int Size = 272;

    /// <summary>fp16 bits of each row's d.</summary>
    public fixed ushort D[Rows];
    public fixed byte Qs[Rows * 32];

    /// <summary>Builds the group of block `block` of 8 rows: row j starts at src + j * rowBytes.</summary>
    internal static void Pack(byte* src, long rowBytes, int block, BlockQ8_0x8* dst)
    {
        for (int j = 0; j < Rows; j++)
        {
            byte* x = src + j * rowBytes + block * 34; // block_q8_0: f16 d, 32 int8
            dst->D[j] = *(ushort*)x;
            for (int i = 0; i < 8; i++)
                *(uint*)(dst->Qs + 32 * i + 4 * j) = *(uint*)(x + 2 + 4 * i) ^ 0x80808080u;
        }
    }

    /// <summary>Row j's signed quant of element e.</summary>
    internal static int Quant(BlockQ8_0x8* g, int j, int e) => (sbyte)(g->Qs[32 * (e / 4) + 4 * j + e % 4] ^ 0x80);

    /// <summary>Row j of this group as 32 floats, with the arithmetic of Q8_0's reference dequantization (q * d), so
    /// the values are the source row's exactly.</summary>
    internal void Dequantize(int j, float* y)
    {
        fixed (BlockQ8_0x8* g = &this)
        {
            float d = Fp16.ToSingle(g->D[j]);
            for (int e = 0; e < 32; e++) y[e] = Quant(g, j, e) * d;
        }
    }
}
