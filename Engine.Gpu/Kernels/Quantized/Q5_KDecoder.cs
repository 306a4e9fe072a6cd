using Engine.Formats;
using ILGPU;
using static Engine.Gpu.Kernels.Quantized.PackedBits;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>block_q5_K (176 bytes, word-aligned, copied as is: f16 d and dmin in word 0, packed scales in words
/// 1..3, 32 bytes qh of fifth bits in words 4..11, 128 bytes of nibbles in words 12..43; w = d * scale * q -
/// dmin * min with q in [0, 31]). Pieces as Q4_K (nibble word 12 + p, c = p / 8); the fifth bit of column
/// 64c + l is bit 2c of qh byte l, of column 64c + 32 + l bit 2c + 1.</summary>
internal struct Q5_KDecoder : IBlockDecoder
{
    public static GgmlType Type => GgmlType.Q5_K;
    public static int BlockElements => 256;
    public static int RawBlockBytes => 176;
    public static int BlockWords => 44;
    public static int PadOffset => 176;

    public static DecodedPiece Decode(ArrayView<uint> blocks, long blockWord, int piece)
    {
        uint header = blocks[blockWord];
        float d = DeviceHalf.ToFloat(header & 0xFFFFu), dmin = DeviceHalf.ToFloat(header >> 16);
        int c = piece / 8, o = piece % 8;
        KScales.ScaleMin(blocks, blockWord + 1, 2 * c, out int scaleA, out int minA);
        KScales.ScaleMin(blocks, blockWord + 1, 2 * c + 1, out int scaleB, out int minB);
        float dA = d * scaleA, mA = dmin * minA, dB = d * scaleB, mB = dmin * minB;
        uint qh = blocks[blockWord + 4 + o];
        uint q = blocks[blockWord + 12 + piece];
        uint bitsA = qh >> (2 * c), bitsB = qh >> (2 * c + 1);
        int column = 64 * c + 4 * o;
        return new DecodedPiece
        {
            V0 = dA * (LowNibble(q, 0) + Fifth(bitsA, 0)) - mA, V1 = dA * (LowNibble(q, 1) + Fifth(bitsA, 1)) - mA,
            V2 = dA * (LowNibble(q, 2) + Fifth(bitsA, 2)) - mA, V3 = dA * (LowNibble(q, 3) + Fifth(bitsA, 3)) - mA,
            V4 = dB * (HighNibble(q, 0) + Fifth(bitsB, 0)) - mB, V5 = dB * (HighNibble(q, 1) + Fifth(bitsB, 1)) - mB,
            V6 = dB * (HighNibble(q, 2) + Fifth(bitsB, 2)) - mB, V7 = dB * (HighNibble(q, 3) + Fifth(bitsB, 3)) - mB,
            ColA = column, ColB = column + 32,
        };
    }

    /// <summary>Bit 0 of byte i of bits as the value 16 or 0.</summary>
    static int Fifth(uint bits, int i) => (int)((bits >> (8 * i)) & 1u) << 4;
}
