using Engine.Formats;
using ILGPU;
using static Engine.Gpu.Kernels.Quantized.PackedBits;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>block_q8_0 (34 bytes: f16 d, 32 int8 q; w = q * d) as 9 words: d, 2 pad bytes, then the quants in
/// words 1..8. Piece p is quant words 1 + 2p and 2 + 2p: columns 8p..8p+7.</summary>
internal struct Q8_0Decoder : IBlockDecoder
{
    public static GgmlType Type => GgmlType.Q8_0;
    public static int BlockElements => 32;
    public static int RawBlockBytes => 34;
    public static int BlockWords => 9;
    public static int PadOffset => 2;

    public static DecodedPiece Decode(ArrayView<uint> blocks, long blockWord, int piece)
    {
        float d = DeviceHalf.ToFloat(blocks[blockWord] & 0xFFFFu);
        uint a = blocks[blockWord + 1 + 2 * piece], b = blocks[blockWord + 2 + 2 * piece];
        return new DecodedPiece
        {
            V0 = SignedByte(a, 0) * d, V1 = SignedByte(a, 1) * d, V2 = SignedByte(a, 2) * d, V3 = SignedByte(a, 3) * d,
            V4 = SignedByte(b, 0) * d, V5 = SignedByte(b, 1) * d, V6 = SignedByte(b, 2) * d, V7 = SignedByte(b, 3) * d,
            ColA = 8 * piece, ColB = 8 * piece + 4,
        };
    }
}
