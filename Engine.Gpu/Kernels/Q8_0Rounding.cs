using ILGPU.Algorithms;

namespace Engine.Gpu.Kernels;

/// <summary>Q8_0 quantization of one 32-value block inside kernels, as the CPU's Q8_0Format.QuantizeActivations: the
/// scale d = amax / 127 stored as f16, q = round-half-even(x * 127 / amax) (0 for an all-zero block). Used by the KV
/// store (Q8_0 pools) and by the GPTQ / AWQ linears' 8-bit activation mode, so both hold the CPU's values.</summary>
internal static class Q8_0Rounding
{
    public const int BlockValues = 32;

    /// <summary>The block's f16 scale bits.</summary>
    public static ushort Scale(float amax) => DeviceHalfEncoder.FromFloat(amax / 127f);

    /// <summary>What each value is multiplied by before rounding.</summary>
    public static float Inverse(float amax) => amax != 0f ? 127f / amax : 0f;

    /// <summary>Nearest integer, ties to even (MathF.Round's default, _mm256_round_ps's nearest mode), for the
    /// products of Q8_0 quantization (|x| &lt;= 127, so the float arithmetic here is exact).</summary>
    public static int RoundHalfToEven(float x)
    {
        float floor = XMath.Floor(x);
        float fraction = x - floor;
        int whole = (int)floor;
        if (fraction > 0.5f || (fraction == 0.5f && (whole & 1) != 0)) whole++;
        return whole;
    }
}
