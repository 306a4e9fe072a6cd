namespace Engine.Convert.Weights;

/// <summary>A fixed pool of normally distributed floats from a seeded generator, read as a ring. Weights are cut
/// from it rather than drawn one by one: speed does not depend on weight values, and a pool of a few million values
/// makes even a 30B shape cheap to generate. The generator is written out here (xoshiro256** seeded by SplitMix64,
/// Box-Muller) so the same seed gives the same file on every .NET version. Values are rounded to F16 precision, as
/// in an F16 checkpoint: then quantizing them gives the very bytes llama-quantize makes from the F16 file.</summary>
public sealed class NormalPool
{
    public const int DefaultLength = 1 << 22; // 4M values, 16 MiB
    public const double DefaultStd = 0.02;    // the initializer scale of these models' configs (initializer_range)

    readonly float[] _values;

    public NormalPool(ulong seed, int length = DefaultLength, double std = DefaultStd)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 2);
        _values = new float[length];
        var rng = new Xoshiro256(seed);
        for (int i = 0; i + 1 < length; i += 2)
        {
            // Box-Muller: two uniforms in (0, 1] give two independent standard normals.
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            double r = Math.Sqrt(-2.0 * Math.Log(u1)) * std;
            _values[i] = (float)(Half)(r * Math.Cos(2 * Math.PI * u2));
            _values[i + 1] = (float)(Half)(r * Math.Sin(2 * Math.PI * u2));
        }
        if (length % 2 == 1) _values[^1] = 0;
    }

    public int Length => _values.Length;

    /// <summary>Copies dst.Length values starting at <paramref name="start"/> (taken modulo the length), wrapping
    /// around the end of the pool.</summary>
    public void CopyTo(long start, Span<float> dst)
    {
        int at = (int)(start % _values.Length);
        while (dst.Length > 0)
        {
            int n = Math.Min(dst.Length, _values.Length - at);
            _values.AsSpan(at, n).CopyTo(dst);
            dst = dst[n..];
            at = 0;
        }
    }
}

/// <summary>xoshiro256** (Blackman and Vigna), state filled by SplitMix64 from one 64-bit seed.</summary>
public struct Xoshiro256
{
    ulong _s0, _s1, _s2, _s3;

    public Xoshiro256(ulong seed)
    {
        _s0 = SplitMix64(ref seed); _s1 = SplitMix64(ref seed); _s2 = SplitMix64(ref seed); _s3 = SplitMix64(ref seed);
    }

    public static ulong SplitMix64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong Next()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));
}
