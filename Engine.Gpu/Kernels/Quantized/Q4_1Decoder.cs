using Engine.Formats;
using ILGPU;
using static Engine.Gpu.Kernels.Quantized.PackedBits;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>block_q4_1 (20 bytes, word-aligned, copied as is: f16 d and m in word 0, nibbles in words 1..4;
/// w = q * d + m). Piece p is nibble word 1 + p: columns 4p..4p+3 and 16 + 4p.., as in Q4_0.</summary>
internal struct Q4_1Decoder : IBlockDecoder
{
    public static GgmlType Type => GgmlType.Q4_1;
    public static int BlockElements => 32;
    public static int RawBlockBytes => 20;
    public static int BlockWords => 5;
    public static int PadOffset => 20;

    public static DecodedPiece Decode(ArrayView<uint> blocks, long blockWord, int piece)
    {
        uint header = blocks[blockWord];
        float d = DeviceHalf.ToFloat(header & 0xFFFFu), m = DeviceHalf.ToFloat(header >> 16);
        uint q = blocks[blockWord + 1 + piece];
        return new DecodedPiece
        {
            V0 = LowNibble(q, 0) * d + m, V1 = LowNibble(q, 1) * d + m, V2 = LowNibble(q, 2) * d + m, V3 = LowNibble(q, 3) * d + m,
            V4 = HighNibble(q, 0) * d + m, V5 = HighNibble(q, 1) * d + m, V6 = HighNibble(q, 2) * d + m, V7 = HighNibble(q, 3) * d + m,
            ColA = 4 * piece, ColB = 16 + 4 * piece,
        };
    }
}
