using System.Security.Cryptography;

namespace Engine.Sampling;

/// <summary>
/// xorshift64* generator (Vigna 2014), the same family as llama2.c's sampler. Written out here rather than
/// using System.Random, whose algorithm is an implementation detail that may change between .NET versions:
/// the promise "same seed ⇒ same draws on every machine and every build" needs an algorithm we own.
/// </summary>
internal struct SamplerRng
{
    ulong _state;

    /// <summary>Seeds the generator. The seed goes through SplitMix64 first because xorshift has an all-zero
    /// fixed point (seed 0 would otherwise produce 0 forever) and small seeds would start in a poorly mixed state.</summary>
    public SamplerRng(ulong seed)
    {
        var z = seed + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        _state = z == 0 ? 0x9E3779B97F4A7C15UL : z;
    }

    /// <summary>A seed from the operating system's CSPRNG, for requests that did not ask for one (checklist R11).</summary>
    public static ulong OsSeed()
    {
        Span<byte> bytes = stackalloc byte[8];
        RandomNumberGenerator.Fill(bytes);
        return BitConverter.ToUInt64(bytes);
    }

    /// <summary>Next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        _state ^= _state >> 12;
        _state ^= _state << 25;
        _state ^= _state >> 27;
        return _state * 0x2545F4914F6CDD1DUL;
    }

    /// <summary>Uniform float in [0, 1) with 24 bits of resolution (exactly representable, never 1).</summary>
    public float NextFloat() => (NextUInt64() >> 40) * (1f / (1 << 24));
}
