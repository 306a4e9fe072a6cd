using Engine.Formats;
using ILGPU;
using static Engine.Gpu.Kernels.Quantized.PackedBits;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>block_iq4_nl (18 bytes: f16 d, 16 bytes of 4-bit codebook indices; w = d * kvalues[q]) as 5 words,
/// laid out and pieced exactly like Q4_0.</summary>
internal struct IQ4_NLDecoder : IBlockDecoder
{
    public static GgmlType Type => GgmlType.IQ4_NL;
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
            V0 = d * IQ4Value(LowNibble(q, 0)), V1 = d * IQ4Value(LowNibble(q, 1)), V2 = d * IQ4Value(LowNibble(q, 2)), V3 = d * IQ4Value(LowNibble(q, 3)),
            V4 = d * IQ4Value(HighNibble(q, 0)), V5 = d * IQ4Value(HighNibble(q, 1)), V6 = d * IQ4Value(HighNibble(q, 2)), V7 = d * IQ4Value(HighNibble(q, 3)),
            ColA = 4 * piece, ColB = 16 + 4 * piece,
        };
    }
}
