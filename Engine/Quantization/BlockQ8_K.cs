using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Engine.Quantization;

/// <summary>block_q8_K: the activation format of the k-quants. 256 int8 quants, a float scale, and the sums
/// of each group of 16 quants (bsums) so that the weight "min" terms cost one small dot per block.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ8_K
{
    public const int QK = 256;
    public float D;
    public fixed sbyte Qs[QK];
    public fixed short BSums[QK / 16];

    /// <summary>quantize_row_q8_K_ref: iscale = -127/max (max = the signed value of largest magnitude),
    /// q = nearest_int(iscale * x) (ties to even), d = 1/iscale.</summary>
    internal static void Quantize(float* x, BlockQ8_K* y, int k)
    {
        for (int i = 0; i < k / QK; i++, x += QK)
        {
            float max = 0, amax = 0;
            for (int j = 0; j < QK; j++)
            {
                float ax = MathF.Abs(x[j]);
                if (ax > amax) { amax = ax; max = x[j]; }
            }
            if (amax == 0)
            {
                // ggml leaves bsums untouched here; zero them so the block is deterministic (they are all-zero sums anyway).
                y[i] = default;
                continue;
            }
            float iscale = -127f / max;
            for (int j = 0; j < QK; j++)
                y[i].Qs[j] = (sbyte)Math.Min(127, QuantMath.NearestInt(iscale * x[j]));
            for (int j = 0; j < QK / 16; j++)
            {
                int sum = 0;
                for (int l = 0; l < 16; l++) sum += y[i].Qs[j * 16 + l];
                y[i].BSums[j] = (short)sum;
            }
            y[i].D = 1 / iscale;
        }
    }
}

/// <summary>block_q8_1: Q8_0 plus s = d * sum(qs), the activation format of Q4_1 and Q5_1 (their min term).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ8_1
{
    public const int QK = 32;
    public Half D;
    public Half S;
    public fixed sbyte Qs[QK];

    /// <summary>quantize_row_q8_1_ref: as Q8_0 (roundf), plus s = fp16(sum * d).</summary>
    internal static void Quantize(float* x, BlockQ8_1* y, int k)
    {
        for (int i = 0; i < k / QK; i++, x += QK)
        {
            float amax = 0;
            for (int j = 0; j < QK; j++) amax = Math.Max(amax, MathF.Abs(x[j]));
            float d = amax / 127;
            float id = d != 0 ? 1.0f / d : 0.0f;
            y[i].D = (Half)d;
            int sum = 0;
            for (int j = 0; j < QK; j++)
            {
                sbyte q = (sbyte)QuantMath.RoundAway(x[j] * id);
                y[i].Qs[j] = q;
                sum += q;
            }
            y[i].S = (Half)(sum * d);
        }
    }

    /// <summary>quantize_row_q8_1 of llama.cpp's x86 backend: as <see cref="Q8_0Format.QuantizeActivations"/>
    /// (127/amax, halves to even), plus s = fp16(d * sum).</summary>
    internal static void QuantizeActivations(float* x, BlockQ8_1* y, int k)
    {
        for (int i = 0; i < k / QK; i++, x += QK)
        {
            float amax = QuantMath.AbsMax32(x);
            float d = amax / 127;
            y[i].D = (Half)d;
            QuantMath.ScaleRoundToInt8x32(x, amax != 0 ? 127f / amax : 0f, y[i].Qs);
            int sum = 0;
            for (int j = 0; j < QK; j++) sum += y[i].Qs[j];
            y[i].S = (Half)(d * sum);
        }
    }
}

/// <summary>Portable 128-bit pieces of the dots on machines without AVX2 (SSE4.1, NEON: the cross-platform
/// Vector128 API only). There is no portable pmaddubsw / pmaddwd, so 16 bytes are split into two sets of int16
/// lanes by shifts on their 16-bit pairs (the even bytes and the odd bytes, no widening shuffles), multiplied in
/// int16 (exact for every operand range the callers pass) and the pair sums widened to int32 before any scale.
/// Integer sums are exact, so they equal the reference's whatever the order.</summary>
internal static unsafe class V128Dot
{
    /// <summary>Even bytes of v as int16 lanes, sign-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<short> EvenSigned(Vector128<short> v) => (v << 8) >> 8;

    /// <summary>Odd bytes of v as int16 lanes, sign-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<short> OddSigned(Vector128<short> v) => v >> 8;

    /// <summary>8 int16 lanes: w[2i] * q8[2i] + w[2i+1] * q8[2i+1], with the 16 weights given as their even and
    /// odd int16 lanes and the 16 activations loaded from q8. Callers keep |w| small enough for int16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<short> PairSums(Vector128<short> wEven, Vector128<short> wOdd, sbyte* q8)
    {
        var q = Vector128.Load((short*)q8);
        return wEven * EvenSigned(q) + wOdd * OddSigned(q);
    }

    /// <summary>Unsigned weight bytes (below 128) against 16 activations: <see cref="PairSums"/> of the bytes of w.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<short> PairSumsUnsigned(Vector128<byte> w, sbyte* q8)
    {
        var u = w.AsUInt16();
        return PairSums((u & Vector128.Create((ushort)0xFF)).AsInt16(), (u >> 8).AsInt16(), q8);
    }

    /// <summary>Signed weight bytes against 16 activations.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<short> PairSumsSigned(Vector128<sbyte> w, sbyte* q8)
    {
        var s = w.AsInt16();
        return PairSums(EvenSigned(s), OddSigned(s), q8);
    }

    /// <summary>8 int16 lanes to 4 int32 lanes, each the sum of an adjacent pair.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> AddPairs(Vector128<short> v)
    {
        var i = v.AsInt32();
        return ((i << 16) >> 16) + (i >> 16);
    }

    /// <summary>16 bits to 16 bytes: byte j is 0xFF where bit j of bits is set, else 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> BytesFromBits16(uint bits)
    {
        var spread = Vector128.ShuffleNative(Vector128.CreateScalar(bits).AsByte(),
            Vector128.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
        var bit = Vector128.Create((byte)1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
        return Vector128.Equals(spread & bit, bit);
    }

    /// <summary>The low and high nibbles of 16 bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Nibbles(byte* p, out Vector128<byte> low, out Vector128<byte> high)
    {
        var raw = Vector128.Load(p);
        low = raw & Vector128.Create((byte)0x0F);
        high = (raw.AsUInt16() >> 4).AsByte() & Vector128.Create((byte)0x0F);
    }
}
