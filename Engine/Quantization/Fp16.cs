using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Engine.Quantization;

/// <summary>IEEE half and bfloat16 conversions, scalar and vector, rounding as ggml does.</summary>
internal static unsafe class Fp16
{
    /// <summary>Exact half to float without branches: the same rebias-by-multiply as the vector version below
    /// (System.Half's conversion is several times slower, and the kernels convert one or two scales per block).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(ushort h)
    {
        uint em = (uint)(h & 0x7fff) << 13;
        uint bits = (h & 0x7c00) == 0x7c00 ? em | 0x7f800000u : BitConverter.SingleToUInt32Bits(BitConverter.UInt32BitsToSingle(em) * 5.192296858534828e33f);
        return BitConverter.UInt32BitsToSingle(bits | ((uint)(h & 0x8000) << 16));
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

    /// <summary>8 halves (zero-extended into uint lanes) to floats, exactly. The exponent/mantissa bits shifted into
    /// float position and multiplied by 2^112 rebias normals and normalise subnormals in one exact multiply;
    /// Inf/NaN (exponent 31) get the float all-ones exponent instead.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ToSingle(Vector256<uint> h)
    {
        var em = (h & Vector256.Create(0x7fffu)) << 13;
        var scaled = (em.AsSingle() * Vector256.Create(0x77800000u).AsSingle() /* 2^112 */).AsUInt32();
        var special = Vector256.Equals(h & Vector256.Create(0x7c00u), Vector256.Create(0x7c00u));
        var bits = Vector256.ConditionalSelect(special, em | Vector256.Create(0x7f800000u), scaled);
        return (bits | ((h & Vector256.Create(0x8000u)) << 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ToSingle(Vector128<uint> h)
    {
        var em = (h & Vector128.Create(0x7fffu)) << 13;
        var scaled = (em.AsSingle() * Vector128.Create(0x77800000u).AsSingle()).AsUInt32();
        var special = Vector128.Equals(h & Vector128.Create(0x7c00u), Vector128.Create(0x7c00u));
        var bits = Vector128.ConditionalSelect(special, em | Vector128.Create(0x7f800000u), scaled);
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
