using Engine.Formats;
using ILGPU;
using static Engine.Gpu.Kernels.Quantized.PackedBits;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>block_q5_1 (24 bytes, word-aligned, copied as is: f16 d and m in word 0, fifth bits qh in word 1,
/// nibbles in words 2..5; w = q * d + m; bits as Q5_0). Piece p is nibble word 2 + p: columns 4p.. and 16 + 4p...</summary>
internal struct Q5_1Decoder : IBlockDecoder
{
    public static GgmlType Type => GgmlType.Q5_1;
    public static int BlockElements => 32;
    public static int RawBlockBytes => 24;
    public static int BlockWords => 6;
    public static int PadOffset => 24;

    public static DecodedPiece Decode(ArrayView<uint> blocks, long blockWord, int piece)
    {
        uint header = blocks[blockWord];
        float d = DeviceHalf.ToFloat(header & 0xFFFFu), m = DeviceHalf.ToFloat(header >> 16);
        uint qh = blocks[blockWord + 1];
        uint q = blocks[blockWord + 2 + piece];
        uint low = qh >> (4 * piece), high = qh >> (16 + 4 * piece);
        return new DecodedPiece
        {
            V0 = (LowNibble(q, 0) | Fifth(low, 0)) * d + m, V1 = (LowNibble(q, 1) | Fifth(low, 1)) * d + m,
            V2 = (LowNibble(q, 2) | Fifth(low, 2)) * d + m, V3 = (LowNibble(q, 3) | Fifth(low, 3)) * d + m,
            V4 = (HighNibble(q, 0) | Fifth(high, 0)) * d + m, V5 = (HighNibble(q, 1) | Fifth(high, 1)) * d + m,
            V6 = (HighNibble(q, 2) | Fifth(high, 2)) * d + m, V7 = (HighNibble(q, 3) | Fifth(high, 3)) * d + m,
            ColA = 4 * piece, ColB = 16 + 4 * piece,
        };
    }

    /// <summary>Bit i of bits as the value 16 or 0.</summary>
    static int Fifth(uint bits, int i) => (int)((bits >> i) & 1u) << 4;
}
