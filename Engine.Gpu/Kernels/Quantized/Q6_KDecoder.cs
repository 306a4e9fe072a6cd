using Engine.Formats;
using ILGPU;
using static Engine.Gpu.Kernels.Quantized.PackedBits;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>
/// block_q6_K (210 bytes: 128 bytes ql of low nibbles, 64 bytes qh of 2-bit high parts, 16 int8 scales, f16 d;
/// w = d * scale * (q - 32)) as 53 words: the raw bytes with two pad bytes after d, so ql is words 0..31, qh words
/// 32..47, scales words 48..51 and d the low half of word 52.
/// Per 128-column half h: ql bytes [64h, 64h + 32) hold columns l (low nibble) and l + 64 (high), bytes
/// [64h + 32, 64h + 64) columns l + 32 and l + 96; qh byte 32h + l holds the high bits of l, l + 32, l + 64, l + 96
/// in bit pairs 0, 2, 4, 6; column n of the half has scale 8h + n / 16.
/// Piece p: h = p / 16, u = p % 16 is ql word 16h + u, o = u % 8, upper = u >= 8: columns
/// 128h + 32 upper + 4o.. (low nibbles) and that + 64 (high nibbles).
/// </summary>
internal struct Q6_KDecoder : IBlockDecoder
{
    public static GgmlType Type => GgmlType.Q6_K;
    public static int BlockElements => 256;
    public static int RawBlockBytes => 210;
    public static int BlockWords => 53;
    public static int PadOffset => 210;

    public static DecodedPiece Decode(ArrayView<uint> blocks, long blockWord, int piece)
    {
        int half = piece / 16, u = piece % 16, o = u % 8, upper = u / 8;
        float d = DeviceHalf.ToFloat(blocks[blockWord + 52] & 0xFFFFu);
        uint ql = blocks[blockWord + 16 * half + u];
        uint qh = blocks[blockWord + 32 + 8 * half + o];
        // Columns 4o..4o+3 of a 32-column group share one 16-column scale.
        int scaleA = 8 * half + o / 4 + 2 * upper, scaleB = scaleA + 4;
        // The reference multiplies d * scale first, then by the quant.
        float dA = d * SignedByte(blocks[blockWord + 48 + scaleA / 4], scaleA % 4);
        float dB = d * SignedByte(blocks[blockWord + 48 + scaleB / 4], scaleB % 4);
        int shiftA = 2 * upper, shiftB = shiftA + 4;
        int column = 128 * half + 32 * upper + 4 * o;
        return new DecodedPiece
        {
            V0 = dA * Quant(LowNibble(ql, 0), qh, 0, shiftA), V1 = dA * Quant(LowNibble(ql, 1), qh, 1, shiftA),
            V2 = dA * Quant(LowNibble(ql, 2), qh, 2, shiftA), V3 = dA * Quant(LowNibble(ql, 3), qh, 3, shiftA),
            V4 = dB * Quant(HighNibble(ql, 0), qh, 0, shiftB), V5 = dB * Quant(HighNibble(ql, 1), qh, 1, shiftB),
            V6 = dB * Quant(HighNibble(ql, 2), qh, 2, shiftB), V7 = dB * Quant(HighNibble(ql, 3), qh, 3, shiftB),
            ColA = column, ColB = column + 64,
        };
    }

    /// <summary>The signed 6-bit quant: a nibble plus the two high bits at <paramref name="shift"/> of qh byte i.</summary>
    static int Quant(int nibble, uint qh, int i, int shift) => (nibble | (((Byte(qh, i) >> shift) & 3) << 4)) - 32;
}
