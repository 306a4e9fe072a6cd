using System.Runtime.Intrinsics;
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
}
