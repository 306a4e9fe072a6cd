using System.Runtime.InteropServices;
using Engine.Gpu.Kernels.Quantized;

namespace Engine.Tests.Gpu.Quantized;

public class BlockRepackerTests
{
    [Fact]
    public void Q4_0BlocksGetTwoPadBytesAfterTheScale()
    {
        var raw = new byte[2 * 18];
        for (int i = 0; i < raw.Length; i++) raw[i] = (byte)(i + 1);
        var words = new uint[2 * Q4_0Decoder.BlockWords];

        BlockRepacker<Q4_0Decoder>.Repack(raw, words);

        var bytes = MemoryMarshal.AsBytes(words.AsSpan()).ToArray();
        bytes[..4].Should().Equal(1, 2, 0, 0);
        bytes[4..20].Should().Equal(raw[2..18]);
        bytes[20..24].Should().Equal(19, 20, 0, 0);
        bytes[24..40].Should().Equal(raw[20..36]);
    }

    [Fact]
    public void AlignedBlocksAreCopiedAsTheyAre()
    {
        var raw = new byte[144];
        new Random(3).NextBytes(raw);
        var words = new uint[36];

        BlockRepacker<Q8_0Decoder>.Repack(raw.AsSpan(0, 34), words.AsSpan(0, 9));

        MemoryMarshal.AsBytes(words.AsSpan(0, 9)).ToArray()[4..36].Should().Equal(raw[2..34]);
    }
}
