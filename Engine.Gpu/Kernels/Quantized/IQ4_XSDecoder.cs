using Engine.Formats;
using ILGPU;
using static Engine.Gpu.Kernels.Quantized.PackedBits;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>block_iq4_xs (136 bytes, word-aligned, copied as is: f16 d and the 16-bit scales_h in word 0, the four
/// scales_l bytes in word 1, 128 bytes of codebook indices in words 2..33; sub-block ib of 32 has the 6-bit scale
/// ls = low nibble ib of scales_l | bits 2ib..2ib+1 of scales_h &lt;&lt; 4, and w = d * (ls - 32) * kvalues[q]; its 16
/// index bytes hold columns j (low) and j + 16 (high)). Piece p: ib = p / 4, word 2 + p, columns 32ib + 4(p % 4)..
/// and that + 16.</summary>
internal struct IQ4_XSDecoder : IBlockDecoder
{
    public static GgmlType Type => GgmlType.IQ4_XS;
    public static int BlockElements => 256;
    public static int RawBlockBytes => 136;
    public static int BlockWords => 34;
    public static int PadOffset => 136;

    public static DecodedPiece Decode(ArrayView<uint> blocks, long blockWord, int piece)
    {
        uint header = blocks[blockWord];
        int ib = piece / 4;
        int low = (Byte(blocks[blockWord + 1], ib / 2) >> (4 * (ib % 2))) & 0xF;
        int high = (int)((header >> (16 + 2 * ib)) & 3u);
        // The reference computes dl = d * (ls - 32) once per sub-block, then dl * kvalue.
        float dl = DeviceHalf.ToFloat(header & 0xFFFFu) * ((low | (high << 4)) - 32);
        uint q = blocks[blockWord + 2 + piece];
        int column = 32 * ib + 4 * (piece % 4);
        return new DecodedPiece
        {
            V0 = dl * IQ4Value(LowNibble(q, 0)), V1 = dl * IQ4Value(LowNibble(q, 1)), V2 = dl * IQ4Value(LowNibble(q, 2)), V3 = dl * IQ4Value(LowNibble(q, 3)),
            V4 = dl * IQ4Value(HighNibble(q, 0)), V5 = dl * IQ4Value(HighNibble(q, 1)), V6 = dl * IQ4Value(HighNibble(q, 2)), V7 = dl * IQ4Value(HighNibble(q, 3)),
            ColA = column, ColB = column + 16,
        };
    }
}
