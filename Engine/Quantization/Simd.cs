using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Quantization;

/// <summary>
/// Small SIMD building blocks shared by the kernels. Every fast path is chosen by IsSupported checks the JIT
/// folds to constants, so under DOTNET_EnableAVX2=0 / EnableHWIntrinsic=0 the Vector128 or scalar code runs.
/// </summary>
internal static unsafe class Simd
{
    /// <summary>True when the AVX2 kernels can run (they use FMA for the float accumulators).</summary>
    public static bool Avx2Fma => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>True when the 512-bit kernels can run: AVX-512 F and BW, 32 vector registers. The float-weight
    /// kernels use them; they sum in the same order as the AVX2 ones (16 lanes), so results do not depend on it.</summary>
    public static bool Avx512 => Avx512F.IsSupported && Avx512BW.IsSupported && Fma.IsSupported && Vector512.IsHardwareAccelerated;

    /// <summary>True when the portable 128-bit kernels can run (SSE or NEON).</summary>
    public static bool V128 => Vector128.IsHardwareAccelerated;

    /// <summary>Sums of 4 adjacent products of unsigned bytes a and signed bytes b, as 8 int32 lanes.
    /// VNNI does it in one instruction; AVX2 goes through int16 (pmaddubsw), which cannot saturate for our
    /// operands (|a| &lt;= 128, |b| &lt;= 127 gives at most 32512 per pair).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> DotU8I8(Vector256<byte> a, Vector256<sbyte> b)
    {
        if (AvxVnni.IsSupported) return AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, a, b);
        return Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(a, b), Vector256.Create((short)1));
    }

    /// <summary>Signed x signed version via the sign trick (|w| times b carrying w's sign). w is the weight side:
    /// it may hold -128; b (the activations) must not, which every activation quantizer guarantees.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> DotI8I8(Vector256<sbyte> w, Vector256<sbyte> b)
        => DotU8I8(Avx2.Abs(w), Avx2.Sign(b, w));

    /// <summary>16 nibbles of 16 bytes: low nibbles in the low 128-bit lane, high nibbles in the high lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Nibbles32(byte* p)
    {
        var v = Vector128.Load(p);
        var hi = Vector128.ShiftRightLogical(v.AsUInt16(), 4).AsByte();
        return Vector256.Create(v, hi) & Vector256.Create((byte)0x0F);
    }

    /// <summary>32 bits to 32 bytes of 0x00 / 0xFF (bit i of the little-endian word to byte i).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> BytesFromBits32(uint bits)
    {
        var shuffle = Vector256.Create(0x0000000000000000UL, 0x0101010101010101UL, 0x0202020202020202UL, 0x0303030303030303UL).AsByte();
        var bytes = Avx2.Shuffle(Vector256.Create(bits).AsByte(), shuffle);
        // Each byte keeps one bit clear in this mask; OR-ing fills all others, so the byte is all-ones exactly when its bit was set.
        bytes |= Vector256.Create(0x7fbfdfeff7fbfdfeUL).AsByte();
        return Vector256.Equals(bytes, Vector256<byte>.AllBitsSet);
    }

    /// <summary>Horizontal sum in ggml's order (hsum_float_8): upper half onto lower, then lanes 2,3 onto
    /// 0,1, then lane 1 onto 0. Written out because Vector128.Sum pairs the lanes differently.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float HSum(Vector256<float> v)
    {
        var s = v.GetLower() + v.GetUpper();
        return (s.GetElement(0) + s.GetElement(2)) + (s.GetElement(1) + s.GetElement(3));
    }

    /// <summary>16 lanes summed as ggml's _mm512_reduce_add_ps of the same lanes: the upper 8 onto the lower 8,
    /// then <see cref="HSum(Vector256{float})"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float HSum(Vector512<float> v) => HSum(v.GetLower() + v.GetUpper());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int HSum(Vector256<int> v) => Vector128.Sum(v.GetLower() + v.GetUpper());
}
