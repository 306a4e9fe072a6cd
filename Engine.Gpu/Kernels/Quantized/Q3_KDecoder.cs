using Engine.Formats;
using ILGPU;
using static Engine.Gpu.Kernels.Quantized.PackedBits;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>
/// block_q3_K (110 bytes: 32 bytes hmask, 64 bytes of 2-bit low parts, 12 bytes of packed 6-bit scales, f16 d;
/// w = d * (scale - 32) * q with q in [-4, 3]) as 28 words: the raw bytes with two pad bytes after d, so hmask is
/// words 0..7, the low parts words 8..23, the scales words 24..26, d the low half of word 27.
/// The low 2 bits are placed as in Q2_K; the third bit of column 128h + 32c + l is bit 4h + c of hmask byte l, and
/// a clear bit means q - 4. Pieces as Q2_K (low-part word 8 + 8h + o, hmask word o).
/// </summary>
internal struct Q3_KDecoder : IBlockDecoder
{
    public static GgmlType Type => GgmlType.Q3_K;
    public static int BlockElements => 256;
    public static int RawBlockBytes => 110;
    public static int BlockWords => 28;
    public static int PadOffset => 110;

    public static DecodedPiece Decode(ArrayView<uint> blocks, long blockWord, int piece)
    {
        int half = piece / 16, r = piece % 16, o = r % 8, c = 2 * (r / 8);
        float d = DeviceHalf.ToFloat(blocks[blockWord + 27] & 0xFFFFu);
        uint q = blocks[blockWord + 8 + 8 * half + o];
        uint hmask = blocks[blockWord + o];
        // The reference computes dl = d * (scale - 32) per 16 columns, then dl * q.
        float dA = d * Scale(blocks, blockWord + 24, 8 * half + 2 * c + o / 4);
        float dB = d * Scale(blocks, blockWord + 24, 8 * half + 2 * (c + 1) + o / 4);
        int bitA = 4 * half + c, bitB = bitA + 1;
        int column = 128 * half + 32 * c + 4 * o;
        return new DecodedPiece
        {
            V0 = dA * Quant(q, hmask, 0, c, bitA), V1 = dA * Quant(q, hmask, 1, c, bitA),
            V2 = dA * Quant(q, hmask, 2, c, bitA), V3 = dA * Quant(q, hmask, 3, c, bitA),
            V4 = dB * Quant(q, hmask, 0, c + 1, bitB), V5 = dB * Quant(q, hmask, 1, c + 1, bitB),
            V6 = dB * Quant(q, hmask, 2, c + 1, bitB), V7 = dB * Quant(q, hmask, 3, c + 1, bitB),
            ColA = column, ColB = column + 32,
        };
    }

    /// <summary>Bits 2c..2c+1 of low-part byte i, minus 4 unless bit <paramref name="bit"/> of hmask byte i is set.</summary>
    static int Quant(uint low, uint hmask, int i, int c, int bit) =>
        ((Byte(low, i) >> (2 * c)) & 3) - (((Byte(hmask, i) >> bit) & 1) != 0 ? 0 : 4);

    /// <summary>Scale j (0..15) minus 32: its low 4 bits are the low (j &lt; 8) or high nibble of byte j % 8, its top
    /// 2 bits sit at bit 2(j / 4) of byte 8 + j % 4 (ggml's kmask shuffle, one scale at a time).</summary>
    static int Scale(ArrayView<uint> blocks, long scalesWord, int j)
    {
        int low = j < 8 ? ByteAt(blocks, scalesWord, j) & 0xF : ByteAt(blocks, scalesWord, j - 8) >> 4;
        int high = (ByteAt(blocks, scalesWord, 8 + j % 4) >> (2 * (j / 4))) & 3;
        return (low | (high << 4)) - 32;
    }
}
