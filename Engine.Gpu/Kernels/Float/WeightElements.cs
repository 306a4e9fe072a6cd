using ILGPU;

namespace Engine.Gpu.Kernels.Float;

/// <summary>How one stored weight element becomes a float inside a kernel. Implemented by empty structs so
/// the generic kernels are specialized per type at compile time (no branch, no indirection on the device).</summary>
internal interface IWeightElement<TRaw> where TRaw : unmanaged
{
    float ToFloat(TRaw raw);
}

internal readonly struct F32Element : IWeightElement<float>
{
    public float ToFloat(float raw) => raw;
}

/// <summary>IEEE half, decoded with integer operations so every backend (PTX, OpenCL, CPU) gives the exact
/// same float, subnormals included.</summary>
internal readonly struct F16Element : IWeightElement<ushort>
{
    public float ToFloat(ushort raw)
    {
        uint sign = (uint)(raw & 0x8000) << 16;
        uint exponent = (uint)(raw >> 10) & 0x1F;
        uint mantissa = raw & 0x3FFu;
        if (exponent == 0)
        {
            // Zero or subnormal: mantissa * 2^-24 is exact in float.
            float magnitude = mantissa * 5.9604644775390625e-8f;
            return sign != 0 ? -magnitude : magnitude;
        }
        if (exponent == 31) return Interop.IntAsFloat(sign | 0x7F800000u | (mantissa << 13));
        return Interop.IntAsFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
    }
}

/// <summary>bfloat16 is the top half of a float32.</summary>
internal readonly struct BF16Element : IWeightElement<ushort>
{
    public float ToFloat(ushort raw) => Interop.IntAsFloat((uint)raw << 16);
}
