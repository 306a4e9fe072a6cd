using ILGPU;
using static Engine.Gpu.Kernels.Quantized.PackedBits;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>The 12-byte packed scales of Q4_K and Q5_K (ggml's get_scale_min_k4): sub-blocks 0..3 keep 6-bit
/// scale and min in bytes j and j + 4; sub-blocks 4..7 take their low 4 bits from byte j + 4 and their top 2 bits
/// from the spare top bits of bytes j - 4 (scale) and j (min).</summary>
internal static class KScales
{
    public static void ScaleMin(ArrayView<uint> blocks, long scalesWord, int j, out int scale, out int min)
    {
        if (j < 4)
        {
            scale = ByteAt(blocks, scalesWord, j) & 63;
            min = ByteAt(blocks, scalesWord, j + 4) & 63;
        }
        else
        {
            int packed = ByteAt(blocks, scalesWord, j + 4);
            scale = (packed & 0xF) | ((ByteAt(blocks, scalesWord, j - 4) >> 6) << 4);
            min = (packed >> 4) | ((ByteAt(blocks, scalesWord, j) >> 6) << 4);
        }
    }
}
