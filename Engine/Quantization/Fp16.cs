using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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

    /// <summary>True when the 16 halves at p are all normal numbers (no zero, subnormal, infinity or NaN), so
    /// the integer rebias of <see cref="Load16Avx2"/> and <see cref="Load16Avx512"/> converts them exactly.
    /// (h + 0x400) carries a 0 or 31 exponent to 1 or 0, so bits 11-14 of it are clear exactly then.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool AllNormal16(ushort* p) =>
        !Vector256.EqualsAny((Vector256.Load(p) + Vector256.Create((ushort)0x400)) & Vector256.Create((ushort)0x7800), Vector256<ushort>.Zero);

    /// <summary>A normal half, sign-extended to 32 bits, as a float: the sign extension fills bits 16-31 with the
    /// sign, the shift puts the exponent and mantissa in place (and copies of the sign into bits 28-31), the mask
    /// keeps the sign bit alone of those, and adding 112 to the exponent rebiases 15 to 127. Three integer
    /// operations in place of <see cref="ToSingle(Vector256{uint})"/>'s dozen; exact for normal halves only.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> RebiasNormal(Vector256<int> signExtended) =>
        (((signExtended << 13) & Vector256.Create(unchecked((int)0x8FFFFFFF))) + Vector256.Create(112 << 23)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> RebiasNormal(Vector512<int> signExtended) =>
        (((signExtended << 13) & Vector512.Create(unchecked((int)0x8FFFFFFF))) + Vector512.Create(112 << 23)).AsSingle();

    /// <summary><see cref="AllNormal16"/> for the 32 halves at p, in one 512-bit check.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AllNormal32(ushort* p) =>
        !Vector512.EqualsAny((Vector512.Load(p) + Vector512.Create((ushort)0x400)) & Vector512.Create((ushort)0x7800), Vector512<ushort>.Zero);

    /// <summary>16 halves at p as floats, all of them known to be normal (<see cref="AllNormal32"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16NormalAvx512(ushort* p) => RebiasNormal(Avx512F.ConvertToVector512Int32(Vector256.Load((short*)p)));

    /// <summary>16 halves at p as floats in two vectors (AVX2), exactly: the three-operation rebias when all 16 are
    /// normal, which is nearly always for weights, else <see cref="Load8"/>'s full conversion. .NET exposes no
    /// F16C instruction; this is what makes F16 weights run near the speed of memory.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load16Avx2(ushort* p, out Vector256<float> lo, out Vector256<float> hi)
    {
        if (AllNormal16(p))
        {
            lo = RebiasNormal(Avx2.ConvertToVector256Int32((short*)p));
            hi = RebiasNormal(Avx2.ConvertToVector256Int32((short*)p + 8));
        }
        else
        {
            lo = Load8(p);
            hi = Load8(p + 8);
        }
    }

    /// <summary>16 halves at p as one 16-lane vector (AVX-512), exactly: the rebias when all 16 are normal, else
    /// <see cref="Load16ExactAvx512"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16Avx512(ushort* p)
    {
        if (AllNormal16(p)) return RebiasNormal(Avx512F.ConvertToVector512Int32(Vector256.Load((short*)p)));
        return Load16ExactAvx512(p);
    }

    /// <summary>16 halves at p as floats, exactly, whatever they hold, without a branch: every lane is converted as
    /// a normal (the rebias), as a subnormal (its 10-bit mantissa times 2^-24, a product of normal floats) and as an
    /// infinity or NaN (all-ones exponent), and its exponent picks one. No floating-point operation sees a
    /// subnormal operand (see <see cref="ToSingle(ushort)"/> for why that matters).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16ExactAvx512(ushort* p)
    {
        var h = Avx512F.ConvertToVector512Int32(Vector256.Load((short*)p));
        var magnitude = h & Vector512.Create(0x7FFF);
        var normal = RebiasNormal(h).AsInt32();
        var subnormal = (Vector512.ConvertToSingle(magnitude) * Vector512.Create(1f / 16777216f)).AsInt32() | (h & Vector512.Create(int.MinValue));
        var special = ((h << 13) & Vector512.Create(unchecked((int)0x8FFFFFFF))) | Vector512.Create(0x7F800000);
        var bits = Vector512.ConditionalSelect(Vector512.LessThan(magnitude, Vector512.Create(0x400)), subnormal, normal);
        return Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(magnitude, Vector512.Create(0x7C00)), special, bits).AsSingle();
    }

    /// <summary>2^112: the distance between the half and the float exponent bias.</summary>
    const float HalfToFloatScale = 5.192296858534828e33f;

    /// <summary>16 halves at p as floats, exactly, whatever they hold, in five operations and one patch: the
    /// sign-extended half shifted so that its exponent and mantissa sit in a float's (bits 28-30, copies of the sign,
    /// masked off) reads as the float 2^-112 times the half's value, subnormals included, and multiplying by 2^112 is
    /// exact. An infinity or NaN (exponent 31) is given the float all-ones exponent. Unlike the rebias of
    /// <see cref="Load16Avx512"/> it needs no check of the 16 halves and no branch (real weights hold a zero or a
    /// subnormal half in about one 32-half run in 13); but a subnormal half is a subnormal float operand to the
    /// multiply, so it is only for cores that take no assist on those (<see cref="SubnormalOperandsAreSlow"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16AnyAvx512(ushort* p)
    {
        var h = Avx512F.ConvertToVector512Int32(Vector256.Load((short*)p));
        var value = ((h << 13) & Vector512.Create(unchecked((int)0x8FFFFFFF))).AsSingle() * Vector512.Create(HalfToFloatScale);
        var special = Vector512.Equals(h & Vector512.Create(0x7C00), Vector512.Create(0x7C00));
        return Vector512.ConditionalSelect(special.AsSingle(), value | Vector512.Create(0x7F800000).AsSingle(), value);
    }

    /// <summary>True when this core multiplies a vector holding subnormal floats much more slowly than one without (a
    /// microcode assist per instruction, as some x86 cores take; the Zen 5 this was written on takes none), so that
    /// <see cref="Load16AnyAvx512"/> would be slow on real weights. Measured once, on first use: the same 512-bit
    /// multiplies over normal and over subnormal operands, best of several tries, slow when the subnormal ones take
    /// more than twice as long. Only speed depends on it: every conversion gives the same bits.</summary>
    public static bool SubnormalOperandsAreSlow => SubnormalProbe.Slow;

    static class SubnormalProbe
    {
        public static readonly bool Slow = Measure();
        static float s_sink;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static bool Measure()
        {
            if (!Simd.Avx512) return false;
            var operands = new float[2 * 64];
            for (int i = 0; i < 64; i++)
            {
                operands[i] = 1.5f + i;
                operands[64 + i] = BitConverter.Int32BitsToSingle(0x1000 + i); // subnormal
            }
            long normal = long.MaxValue, subnormal = long.MaxValue;
            fixed (float* p = operands)
                for (int attempt = 0; attempt < 5; attempt++)
                {
                    normal = Math.Min(normal, Time(p));
                    subnormal = Math.Min(subnormal, Time(p + 64));
                }
            return subnormal > 2 * normal;
        }

        /// <summary>Stopwatch ticks for 4096 passes of four independent multiplies over the 64 floats at p.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
        static long Time(float* p)
        {
            var scale = Vector512.Create(HalfToFloatScale);
            Vector512<float> a = Vector512.Load(p), b = Vector512.Load(p + 16), c = Vector512.Load(p + 32), d = Vector512.Load(p + 48);
            Vector512<float> sum = default;
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            for (int i = 0; i < 4096; i++)
            {
                sum += a * scale + b * scale + c * scale + d * scale;
                a = Vector512.Load(p); // reloaded so the products are not hoisted out of the loop
            }
            long ticks = System.Diagnostics.Stopwatch.GetTimestamp() - start;
            s_sink = sum[0]; // keeps the products from being optimized away
            return ticks;
        }
    }

    /// <summary>Loads 8 bfloat16 at p as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadBF8(ushort* p)
    {
        var v = Vector128.Load(p);
        return (Vector256.Create(Vector128.WidenLower(v), Vector128.WidenUpper(v)) << 16).AsSingle();
    }
}
