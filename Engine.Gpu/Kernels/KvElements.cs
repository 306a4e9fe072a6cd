using Engine.Gpu.Kernels.Quantized;
using ILGPU;

namespace Engine.Gpu.Kernels;

/// <summary>How a paged KV pool's stored element becomes a float inside a kernel: one empty struct per
/// <see cref="Engine.Backends.KvElementType"/>, so the attention kernel is specialized per type at compile time.
/// Rows are addressed by slot (block * BlockTokens + offset) and are `width` values wide.</summary>
internal interface IKvElement<TRaw> where TRaw : unmanaged
{
    /// <summary>Value `index` of row `slot` (rows of `width` values), as float.</summary>
    float Load(ArrayView<TRaw> data, long slot, int width, int index);
}

internal readonly struct F32KvElement : IKvElement<float>
{
    public float Load(ArrayView<float> data, long slot, int width, int index) => data[slot * width + index];
}

/// <summary>IEEE half, decoded bit-exactly as the CPU's Fp16.ToSingle.</summary>
internal readonly struct F16KvElement : IKvElement<ushort>
{
    public float Load(ArrayView<ushort> data, long slot, int width, int index) => DeviceHalf.ToFloat(data[slot * width + index]);
}

/// <summary>ggml's block_q8_0, byte for byte: an f16 scale d (little-endian) then 32 int8 quants; value = d * q.</summary>
internal readonly struct Q8_0KvElement : IKvElement<byte>
{
    public const int BlockValues = 32, BlockBytes = 34;

    public float Load(ArrayView<byte> data, long slot, int width, int index)
    {
        long block = slot * (width / BlockValues * BlockBytes) + index / BlockValues * BlockBytes;
        float d = DeviceHalf.ToFloat(data[block] | ((uint)data[block + 1] << 8));
        return d * (sbyte)data[block + 2 + index % BlockValues];
    }
}

/// <summary>Float to IEEE half inside kernels with integer operations only, rounding to nearest even exactly as the
/// CPU's Fp16.FromSingle (System.Half's conversion, F16C, GGML_FP32_TO_FP16) for every input: normals, subnormal
/// halves, overflow to infinity, NaN kept NaN. Integer-only so the result does not depend on how a device treats
/// float denormals.</summary>
internal static class DeviceHalfEncoder
{
    public static ushort FromFloat(float value)
    {
        uint bits = Interop.FloatAsInt(value);
        uint sign = (bits >> 16) & 0x8000u;
        uint magnitude = bits & 0x7FFFFFFFu;
        if (magnitude >= 0x7F800000u) // infinity, or NaN (kept quiet, with the top of its payload)
            return (ushort)(sign | 0x7C00u | (magnitude > 0x7F800000u ? 0x200u | ((magnitude >> 13) & 0x3FFu) : 0u));
        if (magnitude >= 0x477FF000u) return (ushort)(sign | 0x7C00u); // 65520 and above round to infinity
        if (magnitude >= 0x38800000u)
        {
            // A normal half: rebias the exponent, keep 10 mantissa bits, round the 13 dropped to nearest even (a carry
            // into the exponent is the correct next half).
            uint half = (magnitude - (112u << 23)) >> 13;
            uint dropped = magnitude & 0x1FFFu;
            if (dropped > 0x1000u || (dropped == 0x1000u && (half & 1u) != 0)) half++;
            return (ushort)(sign | half);
        }
        if (magnitude <= 0x33000000u) return (ushort)sign; // at most 2^-25, half of the smallest subnormal: to zero (even)
        {
            // A subnormal half counts units of 2^-24: the float's 24-bit significand shifted right by 126 - exponent
            // (14 to 24 bits), rounded to nearest even.
            uint exponent = magnitude >> 23;
            uint significand = (magnitude & 0x7FFFFFu) | 0x800000u;
            int shift = 126 - (int)exponent;
            uint half = significand >> shift;
            uint dropped = significand & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
            if (dropped > halfway || (dropped == halfway && (half & 1u) != 0)) half++;
            return (ushort)(sign | half);
        }
    }
}
