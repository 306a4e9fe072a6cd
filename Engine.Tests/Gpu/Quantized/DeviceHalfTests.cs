using Engine.Gpu.Kernels.Quantized;

namespace Engine.Tests.Gpu.Quantized;

public class DeviceHalfTests
{
    /// <summary>Every one of the 65536 halves, on the host (the helper is plain C#, the same code the kernels
    /// run): bit-equal to System.Half's conversion, and NaNs keep their payload in the top mantissa bits as
    /// Engine's Fp16.ToSingle does.</summary>
    [Fact]
    public void ConvertsEveryHalfExactly()
    {
        for (uint h = 0; h <= 0xFFFF; h++)
        {
            float got = DeviceHalf.ToFloat(h);
            float want = (float)BitConverter.UInt16BitsToHalf((ushort)h);
            uint expectedBits = float.IsNaN(want)
                ? ((h & 0x8000u) << 16) | 0x7F800000u | ((h & 0x3FFu) << 13)
                : BitConverter.SingleToUInt32Bits(want);
            if (BitConverter.SingleToUInt32Bits(got) != expectedBits)
                Assert.Fail($"half 0x{h:X4}: got 0x{BitConverter.SingleToUInt32Bits(got):X8}, want 0x{expectedBits:X8}");
        }
    }
}
