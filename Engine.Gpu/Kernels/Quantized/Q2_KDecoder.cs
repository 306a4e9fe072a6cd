using Engine.Formats;
using ILGPU;
using static Engine.Gpu.Kernels.Quantized.PackedBits;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>
/// block_q2_K (84 bytes, word-aligned, copied as is: 16 scale bytes in words 0..3 (low nibble scale, high nibble
/// min, one per 16 columns), 64 bytes of 2-bit quants in words 4..19, f16 d and dmin in word 20;
/// w = d * scale * q - dmin * min). In half h, bits 2c..2c+1 of quant byte 32h + l are column 128h + 32c + l.
/// Piece p: h = p / 16, r = p % 16, o = r % 8 (quant word 4 + 8h + o), c = 2(r / 8): columns 128h + 32c + 4o..
/// (bit pair c) and that + 32 (bit pair c + 1). Every word is read by two pieces, one per pair of bit pairs.
/// </summary>
internal struct Q2_KDecoder : IBlockDecoder
{
    public static GgmlType Type => GgmlType.Q2_K;
    public static int BlockElements => 256;
    public static int RawBlockBytes => 84;
    public static int BlockWords => 21;
    public static int PadOffset => 84;

    public static DecodedPiece Decode(ArrayView<uint> blocks, long blockWord, int piece)
    {
        int half = piece / 16, r = piece % 16, o = r % 8, c = 2 * (r / 8);
        uint header = blocks[blockWord + 20];
        float d = DeviceHalf.ToFloat(header & 0xFFFFu), dmin = DeviceHalf.ToFloat(header >> 16);
        uint q = blocks[blockWord + 4 + 8 * half + o];
        // Column n of the block has scale byte n / 16; o >= 4 is the second 16 of a 32-column group.
        int scaleA = ByteAt(blocks, blockWord, 8 * half + 2 * c + o / 4);
        int scaleB = ByteAt(blocks, blockWord, 8 * half + 2 * (c + 1) + o / 4);
        // The reference's float order: dl = d * scale, ml = dmin * min, w = dl * q - ml.
        float dA = d * (scaleA & 0xF), mA = dmin * (scaleA >> 4), dB = d * (scaleB & 0xF), mB = dmin * (scaleB >> 4);
        int shiftA = 2 * c, shiftB = shiftA + 2;
        int column = 128 * half + 32 * c + 4 * o;
        return new DecodedPiece
        {
            V0 = dA * Crumb(q, 0, shiftA) - mA, V1 = dA * Crumb(q, 1, shiftA) - mA, V2 = dA * Crumb(q, 2, shiftA) - mA, V3 = dA * Crumb(q, 3, shiftA) - mA,
            V4 = dB * Crumb(q, 0, shiftB) - mB, V5 = dB * Crumb(q, 1, shiftB) - mB, V6 = dB * Crumb(q, 2, shiftB) - mB, V7 = dB * Crumb(q, 3, shiftB) - mB,
            ColA = column, ColB = column + 32,
        };
    }

    /// <summary>The 2-bit quant at <paramref name="shift"/> of byte i.</summary>
    static int Crumb(uint word, int i, int shift) => (Byte(word, i) >> shift) & 3;
}
