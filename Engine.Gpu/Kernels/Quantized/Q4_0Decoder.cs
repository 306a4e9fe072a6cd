using Engine.Formats;
using ILGPU;
using static Engine.Gpu.Kernels.Quantized.PackedBits;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>block_q4_0 (18 bytes: f16 d, 16 bytes of nibbles; w = (q - 8) * d; byte j holds element j low and
/// j + 16 high) as 5 words: d, 2 pad bytes, nibbles in words 1..4. Piece p is nibble word 1 + p: columns 4p..4p+3
/// (low nibbles) and 16 + 4p.. (high).</summary>
internal struct Q4_0Decoder : IBlockDecoder
{
    public static GgmlType Type => GgmlType.Q4_0;
    public static int BlockElements => 32;
    public static int RawBlockBytes => 18;
    public static int BlockWords => 5;
    public static int PadOffset => 2;

    public static DecodedPiece Decode(ArrayView<uint> blocks, long blockWord, int piece)
    {
        float d = DeviceHalf.ToFloat(blocks[blockWord] & 0xFFFFu);
        uint q = blocks[blockWord + 1 + piece];
        return new DecodedPiece
        {
            V0 = (LowNibble(q, 0) - 8) * d, V1 = (LowNibble(q, 1) - 8) * d, V2 = (LowNibble(q, 2) - 8) * d, V3 = (LowNibble(q, 3) - 8) * d,
            V4 = (HighNibble(q, 0) - 8) * d, V5 = (HighNibble(q, 1) - 8) * d, V6 = (HighNibble(q, 2) - 8) * d, V7 = (HighNibble(q, 3) - 8) * d,
            ColA = 4 * piece, ColB = 16 + 4 * piece,
        };
    }
}
