using System.Runtime.CompilerServices;
using Engine.Formats;
using global::Engine.Quantization;
using global::Engine.Quantization.Repacked;

namespace Engine.Tests.Quantization;

/// <summary>The repacked 8-row Q6_K path against the scalar reference (to the bit: the integers are exact and the
/// float steps are the same) and against the row kernels of the unrepacked rows (within the rounding of another
/// accumulation order). Runs on whichever kernels this process has: CI repeats it without AVX-512, AVX2 and
/// all hardware intrinsics.</summary>
public class Q6_Kx8Tests
{
    static readonly Q6_KFormat F = Q6_KFormat.Instance;

    /// <summary>Every multiple of 256 up to 4096, and the FFN width of Llama-3-8B.</summary>
    public static IEnumerable<int> Lengths()
    {
        for (int k = 256; k <= 4096; k += 256) yield return k;
        yield return 14336;
    }

    [Fact]
    public void Group_struct_is_the_size_of_its_8_blocks()
    {
        Unsafe.SizeOf<BlockQ6_Kx8>().Should().Be(BlockQ6_Kx8.Size).And.Be(8 * 210);
        Q6_Kx8.PackedBytes(16, 512).Should().Be(2 * 2 * BlockQ6_Kx8.Size);
        Q6_Kx8.CanRepack(12, 256).Should().BeFalse();
        Q6_Kx8.CanRepack(16, 100).Should().BeFalse();
    }

    /// <summary>Random Q6_K rows with the scales real files have: d from subnormal halves (common in trained
    /// Q6_K weights) to normal ones, occasionally zero or negative; every other byte (quants, int8 scales) random.</summary>
    static byte[] RandomRows(int rows, int k, Random rng)
    {
        long rowBytes = F.RowBytes(k);
        var bytes = new byte[rows * rowBytes];
        rng.NextBytes(bytes);
        for (int blk = 0; blk < bytes.Length / 210; blk++)
        {
            ushort h = rng.Next(4) switch
            {
                0 or 1 => (ushort)rng.Next(1, 0x400),           // subnormal
                2 => Fp16.FromSingle((float)(rng.NextDouble() * 1e-3)),
                _ => (ushort)(rng.Next(30) == 0 ? 0 : Fp16.FromSingle((float)(1e-5 + rng.NextDouble() * 1e-2))),
            };
            if (rng.Next(10) == 0) h |= 0x8000;
            BitConverter.TryWriteBytes(bytes.AsSpan(blk * 210 + 208), h);
        }
        return bytes;
    }

    static byte[] Activations(int tokens, int k, Random rng)
    {
        int actBytes = F.ActivationBytes(k);
        var act = new byte[tokens * actBytes];
        for (int t = 0; t < tokens; t++)
            F.QuantizeActivations(QuantTestData.RandomActivations(k, rng), act.AsSpan(t * actBytes, actBytes));
        return act;
    }

    [Fact]
    public void Repack_round_trips_every_row_exactly()
    {
        var rng = new Random(1);
        foreach (int k in new[] { 256, 768, 4096 })
        {
            const int rows = 24;
            var src = RandomRows(rows, k, rng);
            long rowBytes = F.RowBytes(k);
            var packed = new byte[Q6_Kx8.PackedBytes(rows, k)];
            Q6_Kx8.Repack(src, rowBytes, rows, k, packed);
            var expected = new float[k];
            var actual = new float[k];
            for (int r = 0; r < rows; r++)
            {
                F.DequantizeRowReference(src.AsSpan((int)(r * rowBytes), (int)rowBytes), expected);
                Q6_Kx8.DequantizeRow(packed, k, r, actual);
                for (int i = 0; i < k; i++)
                    if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                        Assert.Fail($"k={k} row {r} element {i}: source {expected[i]} repacked {actual[i]}");
            }
        }
    }

    [Fact]
    public void Fast_dot_matches_reference_bits_and_the_row_kernels()
    {
        var rng = new Random(2);
        const int rows = 16;
        var fast = new float[8];
        var reference = new float[8];
        foreach (int k in Lengths())
        {
            var src = RandomRows(rows, k, rng);
            long rowBytes = F.RowBytes(k);
            var packed = new byte[Q6_Kx8.PackedBytes(rows, k)];
            Q6_Kx8.Repack(src, rowBytes, rows, k, packed);
            var act = Activations(1, k, rng);
            for (int g = 0; g < rows / 8; g++)
            {
                Q6_Kx8.DotReference(packed, g, act, k, reference);
                Q6_Kx8.Dot(packed, g, act, k, fast);
                for (int j = 0; j < 8; j++)
                {
                    int r = 8 * g + j;
                    BitConverter.SingleToInt32Bits(fast[j]).Should().Be(BitConverter.SingleToInt32Bits(reference[j]),
                        $"k={k} row {r}: fast {fast[j]} reference {reference[j]}");
                    var row = src.AsSpan((int)(r * rowBytes), (int)rowBytes);
                    float rowRef = F.DotRowReference(row, act, k);
                    float rowFast = F.DotRow(row, act, k);
                    var (_, magnitude) = QuantTestData.DequantizedDot(F, row.ToArray(), act, k);
                    double tol = 1e-5 * magnitude + 1e-30;
                    Math.Abs((double)reference[j] - rowRef).Should().BeLessThanOrEqualTo(tol, $"k={k} row {r}: repacked {reference[j]} row reference {rowRef}");
                    Math.Abs((double)reference[j] - rowFast).Should().BeLessThanOrEqualTo(tol, $"k={k} row {r}: repacked {reference[j]} row kernel {rowFast}");
                }
            }
        }
    }

    /// <summary>The prompt form (8- and 4-token tiles plus single tokens) gives every (row, token) the decode bits.</summary>
    [Fact]
    public void MatMul_gives_each_token_the_decode_bits()
    {
        var rng = new Random(3);
        const int rows = 24;
        foreach (int k in new[] { 256, 1280, 4096 })
            foreach (int tokens in new[] { 1, 3, 4, 5, 8, 11, 12 })
            {
                var src = RandomRows(rows, k, rng);
                var packed = new byte[Q6_Kx8.PackedBytes(rows, k)];
                Q6_Kx8.Repack(src, F.RowBytes(k), rows, k, packed);
                int actBytes = F.ActivationBytes(k);
                var act = Activations(tokens, k, rng);
                var y = new float[tokens * rows];
                Q6_Kx8.MatMul(packed, rows, k, act, tokens, y);
                var one = new float[8];
                for (int t = 0; t < tokens; t++)
                    for (int g = 0; g < rows / 8; g++)
                    {
                        Q6_Kx8.DotReference(packed, g, act.AsSpan(t * actBytes, actBytes), k, one);
                        for (int j = 0; j < 8; j++)
                            BitConverter.SingleToInt32Bits(y[t * rows + 8 * g + j]).Should().Be(BitConverter.SingleToInt32Bits(one[j]),
                                $"k={k} tokens={tokens} token {t} row {8 * g + j}: {y[t * rows + 8 * g + j]} vs {one[j]}");
                    }
            }
    }
}
