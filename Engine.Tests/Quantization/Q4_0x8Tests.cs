using System.Runtime.CompilerServices;
using Engine.Formats;
using global::Engine.Quantization;
using global::Engine.Quantization.Repacked;

namespace Engine.Tests.Quantization;

/// <summary>The repacked 8-row Q4_0 path against the scalar reference (to the bit: the integers are exact and the
/// float steps are the same) and against the row kernels of the unrepacked rows (within the rounding of another
/// accumulation order). Runs on whichever kernels this process has: CI repeats it without AVX-512, AVX2 and
/// all hardware intrinsics.</summary>
public class Q4_0x8Tests
{
    static readonly Q4_0Format F = Q4_0Format.Instance;

    /// <summary>Lengths from one block up (odd block counts included), and the FFN width of Llama-3-8B.</summary>
    public static IEnumerable<int> Lengths() => [32, 64, 96, 160, 288, 480, 896, 1024, 1568, 2048, 3040, 4096, 4864, 14336];

    [Fact]
    public void Group_struct_is_the_size_of_its_8_blocks()
    {
        Unsafe.SizeOf<BlockQ4_0x8>().Should().Be(BlockQ4_0x8.Size).And.Be(8 * 18);
        Q4_0x8.PackedBytes(16, 64).Should().Be(2 * 2 * BlockQ4_0x8.Size);
        Q4_0x8.CanRepack(12, 32).Should().BeFalse();
        Q4_0x8.CanRepack(16, 48).Should().BeFalse();
    }

    /// <summary>Random Q4_0 rows with the scales real files have: d from subnormal halves to normal ones,
    /// occasionally zero or negative; the quants random.</summary>
    static byte[] RandomRows(int rows, int k, Random rng)
    {
        long rowBytes = F.RowBytes(k);
        var bytes = new byte[rows * rowBytes];
        rng.NextBytes(bytes);
        for (int blk = 0; blk < bytes.Length / 18; blk++)
        {
            ushort h = rng.Next(4) switch
            {
                0 => (ushort)rng.Next(1, 0x400),                // subnormal
                1 => Fp16.FromSingle((float)(rng.NextDouble() * 1e-3)),
                2 => Fp16.FromSingle((float)(rng.NextDouble() * 0.05)),
                _ => (ushort)(rng.Next(30) == 0 ? 0 : Fp16.FromSingle((float)(1e-4 + rng.NextDouble() * 1e-2))),
            };
            if (rng.Next(10) == 0) h |= 0x8000;
            BitConverter.TryWriteBytes(bytes.AsSpan(blk * 18), h);
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
        foreach (int k in new[] { 32, 96, 896, 4096 })
        {
            const int rows = 24;
            var src = RandomRows(rows, k, rng);
            long rowBytes = F.RowBytes(k);
            var packed = new byte[Q4_0x8.PackedBytes(rows, k)];
            Q4_0x8.Repack(src, rowBytes, rows, k, packed);
            var expected = new float[k];
            var actual = new float[k];
            for (int r = 0; r < rows; r++)
            {
                F.DequantizeRowReference(src.AsSpan((int)(r * rowBytes), (int)rowBytes), expected);
                Q4_0x8.DequantizeRow(packed, k, r, actual);
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
            var packed = new byte[Q4_0x8.PackedBytes(rows, k)];
            Q4_0x8.Repack(src, rowBytes, rows, k, packed);
            var act = Activations(1, k, rng);
            var matvec = new float[rows];
            Q4_0x8.MatVec(packed, k, act, matvec, 0, rows / 8);
            for (int g = 0; g < rows / 8; g++)
            {
                Q4_0x8.DotReference(packed, g, act, k, reference);
                Q4_0x8.Dot(packed, g, act, k, fast);
                for (int j = 0; j < 8; j++)
                {
                    int r = 8 * g + j;
                    BitConverter.SingleToInt32Bits(fast[j]).Should().Be(BitConverter.SingleToInt32Bits(reference[j]),
                        $"k={k} row {r}: fast {fast[j]} reference {reference[j]}");
                    BitConverter.SingleToInt32Bits(matvec[r]).Should().Be(BitConverter.SingleToInt32Bits(reference[j]), $"k={k} row {r}: MatVec");
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

    /// <summary>The prompt form (4-token tiles plus single tokens, in chunks of tokens) gives every (row, token)
    /// the decode bits.</summary>
    [Fact]
    public void MatMul_gives_each_token_the_decode_bits()
    {
        var rng = new Random(3);
        const int rows = 24;
        foreach (int k in new[] { 32, 1248, 4096, 14336 })
            foreach (int tokens in new[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 })
            {
                var src = RandomRows(rows, k, rng);
                var packed = new byte[Q4_0x8.PackedBytes(rows, k)];
                Q4_0x8.Repack(src, F.RowBytes(k), rows, k, packed);
                int actBytes = F.ActivationBytes(k);
                var act = Activations(tokens, k, rng);
                var y = new float[tokens * rows];
                Q4_0x8.MatMul(packed, rows, k, act, tokens, y);
                var one = new float[8];
                for (int t = 0; t < tokens; t++)
                    for (int g = 0; g < rows / 8; g++)
                    {
                        Q4_0x8.DotReference(packed, g, act.AsSpan(t * actBytes, actBytes), k, one);
                        for (int j = 0; j < 8; j++)
                            BitConverter.SingleToInt32Bits(y[t * rows + 8 * g + j]).Should().Be(BitConverter.SingleToInt32Bits(one[j]),
                                $"k={k} tokens={tokens} token {t} row {8 * g + j}: {y[t * rows + 8 * g + j]} vs {one[j]}");
                    }
            }
    }
}
