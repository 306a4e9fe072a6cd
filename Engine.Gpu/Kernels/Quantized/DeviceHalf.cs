using ILGPU;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>IEEE half to float inside kernels, bit-exact with Engine's Fp16.ToSingle (the CPU reference).
/// Integer-only for normals and Inf/NaN, and an exact mantissa * 2^-24 for subnormals, so it does not depend on
/// the device keeping float denormals (the CPU trick of multiplying a denormal float by 2^112 would break under
/// flush-to-zero).</summary>
internal static class DeviceHalf
{
    public static float ToFloat(uint half)
    {
        uint sign = (half & 0x8000u) << 16;
        uint exponent = (half >> 10) & 0x1Fu;
        uint mantissa = half & 0x3FFu;
        if (exponent == 0)
        {
            // mantissa < 2^10 converts exactly, and the product is a normal float (>= 2^-24): exact.
            float subnormal = mantissa * (1f / 16777216f);
            return sign != 0 ? -subnormal : subnormal;
        }
        uint bits = exponent == 31 ? 0x7F800000u | (mantissa << 13) : ((exponent + 112) << 23) | (mantissa << 13);
        return Interop.IntAsFloat(sign | bits);
    }
}
