namespace Engine.Gpu.Kernels.Quantized;

/// <summary>Byte and nibble extraction from little-endian 32-bit words (byte i of a word is block byte 4w + i).</summary>
internal static class PackedBits
{
    public static int Byte(uint word, int i) => (int)((word >> (8 * i)) & 0xFFu);
    public static int SignedByte(uint word, int i) => (sbyte)(byte)(word >> (8 * i));
    public static int LowNibble(uint word, int i) => (int)((word >> (8 * i)) & 0xFu);
    public static int HighNibble(uint word, int i) => (int)((word >> (8 * i + 4)) & 0xFu);

    /// <summary>Byte k of a byte array starting at word blocks[firstWord].</summary>
    public static int ByteAt(ILGPU.ArrayView<uint> blocks, long firstWord, int k) => Byte(blocks[firstWord + (k >> 2)], k & 3);

    /// <summary>The IQ4_NL / IQ4_XS non-linear codebook {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38,
    /// 53, 69, 89, 113} packed as int8 into two constants, because kernels cannot read managed static arrays.</summary>
    public static int IQ4Value(int index)
    {
        const ulong low = 0xF6EADDCFBFAD9881UL, high = 0x7159453526190D01UL;
        ulong table = index < 8 ? low : high;
        return (sbyte)(byte)(table >> (8 * (index & 7)));
    }
}
