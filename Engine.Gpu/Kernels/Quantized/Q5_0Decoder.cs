using Engine.Formats;
using ILGPU;
using static Engine.Gpu.Kernels.Quantized.PackedBits;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>block_q5_0 (22 bytes: f16 d, 4 bytes of fifth bits qh, 16 bytes of nibbles; w = (q - 16) * d; bit j
/// of qh is element j's fifth bit, bit j + 16 element j + 16's) as 6 words: d, 2 pad bytes, qh in word 1, nibbles
/// in words 2..5. Piece p is nibble word 2 + p: columns 4p..4p+3 and 16 + 4p.., as in Q4_0.</summary>
internal struct Q5_0Decoder : IBlockDecoder
{
    public static GgmlType Type => GgmlType.Q5_0;
    public static int BlockElements => 32;
    public static int RawBlockBytes => 22;
    public static int BlockWords => 6;
    public static int PadOffset => 2;

    public static DecodedPiece Decode(ArrayView<uint> blocks, long blockWord, int piece)
    {
        float d = DeviceHalf.ToFloat(blocks[blockWord] & 0xFFFFu);
        uint qh = blocks[blockWord + 1];
        uint q = blocks[blockWord + 2 + piece];
        // Fifth bits of columns 4p..4p+3 and 16 + 4p.., moved down to bits 0..3.
        uint low = qh >> (4 * piece), high = qh >> (16 + 4 * piece);
        return new DecodedPiece
        {
            V0 = ((LowNibble(q, 0) | Fifth(low, 0)) - 16) * d, V1 = ((LowNibble(q, 1) | Fifth(low, 1)) - 16) * d,
            V2 = ((LowNibble(q, 2) | Fifth(low, 2)) - 16) * d, V3 = ((LowNibble(q, 3) | Fifth(low, 3)) - 16) * d,
            V4 = ((HighNibble(q, 0) | Fifth(high, 0)) - 16) * d, V5 = ((HighNibble(q, 1) | Fifth(high, 1)) - 16) * d,
            V6 = ((HighNibble(q, 2) | Fifth(high, 2)) - 16) * d, V7 = ((HighNibble(q, 3) | Fifth(high, 3)) - 16) * d,
            ColA = 4 * piece, ColB = 16 + 4 * piece,
        };
    }

    /// <summary>Bit i of bits as the value 16 or 0.</summary>
    static int Fifth(uint bits, int i) => (int)((bits >> i) & 1u) << 4;
}
