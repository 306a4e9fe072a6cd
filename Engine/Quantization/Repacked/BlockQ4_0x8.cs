using System.Runtime.InteropServices;

namespace Engine.Quantization.Repacked;

/// <summary>
/// One Q4_0 block (32 columns) of 8 consecutive rows, re-laid out so that a kernel computes the 8 rows together:
/// every 32-byte load holds 4 quant bytes of each row, so one broadcast of 4 activation bytes serves all 8 rows
/// and the int32 lanes are the rows. The idea is llama.cpp's block_q4_0x8; the layout is ours (32-bit row
/// interleave, as <see cref="BlockQ4_Kx8"/>). 144 bytes, exactly the 8 source blocks.
///
/// Row j of the group is source row (8g + j). Quarter i (source bytes [4i, 4i + 4)): Qs[32i + 4j + b] = row j's
/// qs[4i + b], whose low nibble is element 4i + b and high nibble element 16 + 4i + b.
///
/// The nibbles are stored as they are (0..15, value d * (q - 8)), not pre-transformed: llama.cpp XORs them with
/// 0x88 at repack time so that they become signed values; here the kernels multiply the unsigned nibbles by the
/// signed activations (pmaddubsw takes exactly that) and subtract 8 * sum(activations of the block), an integer
/// formed once per token and block for all the rows, which is fewer operations per weight byte than signing.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ4_0x8
{
    public const int Rows = 8;
    public const int Size = 144;

    /// <summary>fp16 bits of each row's d.</summary>
    public fixed ushort D[Rows];
    public fixed byte Qs[Rows * BlockQ4_0.QK / 2];

    /// <summary>Builds the group of block `block` of 8 rows: row j starts at src + j * rowBytes.</summary>
    internal static void Pack(byte* src, long rowBytes, int block, BlockQ4_0x8* dst)
    {
        for (int j = 0; j < Rows; j++)
        {
            var x = (BlockQ4_0*)(src + j * rowBytes) + block;
            dst->D[j] = BitConverter.HalfToUInt16Bits(x->D);
            for (int i = 0; i < 4; i++)
                *(uint*)(dst->Qs + 32 * i + 4 * j) = *(uint*)(x->Qs + 4 * i);
        }
    }

    /// <summary>Row j's 4-bit quant of element e (0..15, before the -8).</summary>
    internal static int Quant(BlockQ4_0x8* g, int j, int e)
    {
        int i = (e & 15) / 4, b = e & 3;
        byte q = g->Qs[32 * i + 4 * j + b];
        return e < 16 ? q & 0xF : q >> 4;
    }

    /// <summary>Row j of this group as 32 floats, with the arithmetic of Q4_0's reference dequantization
    /// ((q - 8) * d), so the values are the source row's exactly.</summary>
    internal void Dequantize(int j, float* y)
    {
        fixed (BlockQ4_0x8* g = &this)
        {
            float d = Fp16.ToSingle(g->D[j]);
            for (int e = 0; e < 32; e++) y[e] = (Quant(g, j, e) - 8) * d;
        }
    }
}
