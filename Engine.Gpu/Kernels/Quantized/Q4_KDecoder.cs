using Engine.Formats;
using ILGPU;
using static Engine.Gpu.Kernels.Quantized.PackedBits;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>block_q4_K (144 bytes, already word-aligned, copied as is: f16 d and dmin in word 0, 12 bytes of
/// packed 6-bit scales and mins in words 1..3, 128 bytes of nibbles in words 4..35; w = d * scale * q - dmin * min).
/// Each 32 nibble bytes hold sub-blocks 2c (low) and 2c + 1 (high). Piece p is nibble word 4 + p, c = p / 8:
/// columns 64c + 4(p % 8).. (low) and 64c + 32 + 4(p % 8).. (high).</summary>
internal struct Q4_KDecoder : IBlockDecoder
{
    public static GgmlType Type => GgmlType.Q4_K;
    public static int BlockElements => 256;
    public static int RawBlockBytes => 144;
    public static int BlockWords => 36;
    public static int PadOffset => 144;

    public static DecodedPiece Decode(ArrayView<uint> blocks, long blockWord, int piece)
    {
        uint header = blocks[blockWord];
        float d = DeviceHalf.ToFloat(header & 0xFFFFu), dmin = DeviceHalf.ToFloat(header >> 16);
        int c = piece / 8;
        KScales.ScaleMin(blocks, blockWord + 1, 2 * c, out int scaleA, out int minA);
        KScales.ScaleMin(blocks, blockWord + 1, 2 * c + 1, out int scaleB, out int minB);
        // The reference's float order: d1 = d * scale, m1 = dmin * min, w = d1 * q - m1.
        float dA = d * scaleA, mA = dmin * minA, dB = d * scaleB, mB = dmin * minB;
        uint q = blocks[blockWord + 4 + piece];
        int column = 64 * c + 4 * (piece % 8);
        return new DecodedPiece
        {
            V0 = dA * LowNibble(q, 0) - mA, V1 = dA * LowNibble(q, 1) - mA, V2 = dA * LowNibble(q, 2) - mA, V3 = dA * LowNibble(q, 3) - mA,
            V4 = dB * HighNibble(q, 0) - mB, V5 = dB * HighNibble(q, 1) - mB, V6 = dB * HighNibble(q, 2) - mB, V7 = dB * HighNibble(q, 3) - mB,
            ColA = column, ColB = column + 32,
        };
    }
}
