using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Engine.Quantization;

/// <summary>IEEE half and bfloat16 conversions, scalar and vector, rounding as ggml does.</summary>
internal static unsafe class Fp16
{
    /// <summary>Exact half to float. Normal halves are rebiased with an integer add; subnormal ones are their
    /// 10-bit mantissa times 2^-24, a normal float product. No floating-point operation ever sees a subnormal
    /// operand: x86 cores (AMD's especially) take a microcode assist of ~100 cycles on one, and the super-block
    /// scales of Q6_K and other k-quants of real models are mostly subnormal halves, so a rebias-by-multiply
    /// conversion made the Q6_K kernels 3x slower on real weights than on test data. (System.Half's conversion
    /// is exact too but several times slower.)</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(ushort h)
    {
        uint exponent = h & 0x7c00u;
        uint em = (uint)(h & 0x7fff) << 13;
        uint sign = (uint)(h & 0x8000) << 16;
        if (exponent == 0) return BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits((h & 0x3ff) * (1f / 16777216f)) | sign);
        uint bits = exponent == 0x7c00u ? em | 0x7f800000u : em + (112u << 23);
        return BitConverter.UInt32BitsToSingle(bits | sign);
    }

    /// <summary>A block's f16 scale as float.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(Half h) => ToSingle(BitConverter.HalfToUInt16Bits(h));

    /// <summary>Round to nearest even, like F16C / GGML_FP32_TO_FP16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FromSingle(float f) => BitConverter.HalfToUInt16Bits((Half)f);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float BF16ToSingle(ushort b) => BitConverter.Int32BitsToSingle(b << 16);

    /// <summary>ggml_compute_fp32_to_bf16: round to nearest even; NaN stays NaN (quietened).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort SingleToBF16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (ushort)((u >> 16) | 64);
        return (ushort)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
    }

    /// <summary>8 halves (zero-extended into uint lanes) to floats, exactly, as <see cref="ToSingle(ushort)"/>:
    /// normals rebiased by an integer add, subnormals converted from their integer mantissa and scaled by 2^-24
    /// (a product of normal floats), Inf/NaN (exponent 31) given the float all-ones exponent. No lane ever feeds a
    /// subnormal to a floating-point unit (see the scalar version for why that matters).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ToSingle(Vector256<uint> h)
    {
        var exponent = h & Vector256.Create(0x7c00u);
        var em = (h & Vector256.Create(0x7fffu)) << 13;
        var normal = em + Vector256.Create(112u << 23);
        var subnormal = (Vector256.ConvertToSingle((h & Vector256.Create(0x3ffu)).AsInt32()) * Vector256.Create(1f / 16777216f)).AsUInt32();
        var special = Vector256.Equals(exponent, Vector256.Create(0x7c00u));
        var bits = Vector256.ConditionalSelect(special, em | Vector256.Create(0x7f800000u), normal);
        bits = Vector256.ConditionalSelect(Vector256.Equals(exponent, Vector256<uint>.Zero), subnormal, bits);
        return (bits | ((h & Vector256.Create(0x8000u)) << 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ToSingle(Vector128<uint> h)
    {
        var exponent = h & Vector128.Create(0x7c00u);
        var em = (h & Vector128.Create(0x7fffu)) << 13;
        var normal = em + Vector128.Create(112u << 23);
        var subnormal = (Vector128.ConvertToSingle((h & Vector128.Create(0x3ffu)).AsInt32()) * Vector128.Create(1f / 16777216f)).AsUInt32();
        var special = Vector128.Equals(exponent, Vector128.Create(0x7c00u));
        var bits = Vector128.ConditionalSelect(special, em | Vector128.Create(0x7f800000u), normal);
        bits = Vector128.ConditionalSelect(Vector128.Equals(exponent, Vector128<uint>.Zero), subnormal, bits);
        return (bits | ((h & Vector128.Create(0x8000u)) << 16)).AsSingle();
    }

    /// <summary>Loads 8 halves at p as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(ushort* p)
    {
        var v = Vector128.Load(p);
        return ToSingle(Vector256.Create(Vector128.WidenLower(v), Vector128.WidenUpper(v)));
    }

    /// <summary>Loads 8 bfloat16 at p as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadBF8(ushort* p)
    {
        var v = Vector128.Load(p);
        return (Vector256.Create(Vector128.WidenLower(v), Vector128.WidenUpper(v)) << 16).AsSingle();
    }
}
