using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Quantization;
using FluentAssertions;
using Xunit;

namespace Engine.Tests.Quantization;

public class Fp16Tests
{
    /// <summary>Every one of the 65,536 halves, scalar and both vector widths, against System.Half's conversion:
    /// normals, subnormals (the integer-mantissa path), zeros of both signs, infinities and NaNs.</summary>
    [Fact]
    public void Every_half_converts_exactly()
    {
        var lanes = new uint[8];
        for (int h = 0; h < 65536; h += 8)
        {
            for (int i = 0; i < 8; i++) lanes[i] = (uint)(h + i);
            var wide = Fp16.ToSingle(Vector256.Create(lanes));
            var narrow = Fp16.ToSingle(Vector128.Create(lanes[0], lanes[1], lanes[2], lanes[3]));
            for (int i = 0; i < 8; i++)
            {
                ushort bits = (ushort)(h + i);
                float expected = (float)BitConverter.UInt16BitsToHalf(bits);
                float scalar = Fp16.ToSingle(bits);
                if (float.IsNaN(expected))
                {
                    float.IsNaN(scalar).Should().BeTrue($"half 0x{bits:x4} is NaN");
                    float.IsNaN(wide[i]).Should().BeTrue($"half 0x{bits:x4} is NaN");
                    continue;
                }
                BitConverter.SingleToUInt32Bits(scalar).Should().Be(BitConverter.SingleToUInt32Bits(expected), $"half 0x{bits:x4}");
                BitConverter.SingleToUInt32Bits(wide[i]).Should().Be(BitConverter.SingleToUInt32Bits(expected), $"half 0x{bits:x4} (8 lanes)");
                if (i < 4) BitConverter.SingleToUInt32Bits(narrow[i]).Should().Be(BitConverter.SingleToUInt32Bits(expected), $"half 0x{bits:x4} (4 lanes)");
            }
        }
    }

    /// <summary>The 16-half loads of the float-weight kernels (an integer rebias when all 16 are normal, the full
    /// conversion otherwise, the branch-free full conversion on its own, and the repacked kernels' multiply by 2^112) against the scalar conversion: every half in every window of 16 consecutive halves
    /// (all-normal windows take the fast path, the others the full one), and each special half (zeros, subnormals,
    /// infinities, NaNs, the smallest and largest normals) in each lane of a window of normals, which must send
    /// the whole window down the full path.</summary>
    [Fact]
    public unsafe void Sixteen_half_loads_convert_exactly()
    {
        bool avx2 = Avx2.IsSupported, avx512 = Simd.Avx512;
        if (!avx2 && !avx512) return; // the loads exist only for those kernels; nothing else calls them
        var halves = new ushort[16];
        void Check(string what)
        {
            fixed (ushort* p = halves)
            {
                Vector256<float> lo = default, hi = default;
                if (avx2) Fp16.Load16Avx2(p, out lo, out hi);
                var wide = avx512 ? Fp16.Load16Avx512(p) : default;
                var exact = avx512 ? Fp16.Load16ExactAvx512(p) : default;
                var any = avx512 ? Fp16.Load16AnyAvx512(p) : default;
                for (int i = 0; i < 16; i++)
                {
                    uint expected = BitConverter.SingleToUInt32Bits(Fp16.ToSingle(halves[i]));
                    if (avx2) BitConverter.SingleToUInt32Bits(i < 8 ? lo[i] : hi[i - 8]).Should().Be(expected, $"{what}: half 0x{halves[i]:x4} in lane {i} (AVX2)");
                    if (avx512) BitConverter.SingleToUInt32Bits(wide[i]).Should().Be(expected, $"{what}: half 0x{halves[i]:x4} in lane {i} (AVX-512)");
                    if (avx512) BitConverter.SingleToUInt32Bits(exact[i]).Should().Be(expected, $"{what}: half 0x{halves[i]:x4} in lane {i} (AVX-512, branch-free)");
                    if (avx512) BitConverter.SingleToUInt32Bits(any[i]).Should().Be(expected, $"{what}: half 0x{halves[i]:x4} in lane {i} (AVX-512, scaled by 2^112)");
                }
            }
        }
        for (int h = 0; h < 65536; h += 16)
        {
            for (int i = 0; i < 16; i++) halves[i] = (ushort)(h + i);
            Check($"window 0x{h:x4}");
        }
        var rng = new Random(5);
        ushort[] specials = [0x0000, 0x8000, 0x0001, 0x03ff, 0x83ff, 0x0400, 0x8400, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0xfe01];
        foreach (var special in specials)
            for (int lane = 0; lane < 16; lane++)
            {
                for (int i = 0; i < 16; i++) halves[i] = (ushort)(rng.Next(0x400, 0x7c00) | (rng.Next(2) << 15));
                halves[lane] = special;
                Check($"special 0x{special:x4} in lane {lane}");
            }
    }

    /// <summary>The 32-half check of the F16 decode kernel finds a zero, subnormal, infinity or NaN in any lane,
    /// and passes 32 normals.</summary>
    [Fact]
    public unsafe void Thirty_two_half_check_finds_every_special_half_in_every_lane()
    {
        if (!Simd.Avx512) return; // only the AVX-512 decode kernel calls it
        var rng = new Random(6);
        var halves = new ushort[32];
        ushort[] specials = [0x0000, 0x8000, 0x0001, 0x03ff, 0x83ff, 0x7c00, 0xfc00, 0x7e00, 0xfe01];
        fixed (ushort* p = halves)
        {
            for (int rep = 0; rep < 100; rep++)
            {
                for (int i = 0; i < 32; i++) halves[i] = (ushort)(rng.Next(0x400, 0x7c00) | (rng.Next(2) << 15));
                Fp16.AllNormal32(p).Should().BeTrue();
            }
            foreach (var special in specials)
                for (int lane = 0; lane < 32; lane++)
                {
                    for (int i = 0; i < 32; i++) halves[i] = (ushort)(rng.Next(0x400, 0x7c00) | (rng.Next(2) << 15));
                    halves[lane] = special;
                    Fp16.AllNormal32(p).Should().BeFalse($"half 0x{special:x4} in lane {lane}");
                }
        }
    }
}
