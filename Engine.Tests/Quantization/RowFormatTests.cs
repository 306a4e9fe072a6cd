using System.Runtime.CompilerServices;
using Engine.Formats;
using global::Engine.Quantization;

namespace Engine.Tests.Quantization;

public class RowFormatTests
{
    public static TheoryData<GgmlType> Types()
    {
        var d = new TheoryData<GgmlType>();
        foreach (var f in RowFormats.Supported) d.Add(f.Type);
        return d;
    }

    [Fact]
    public void Block_structs_match_ggml_sizes()
    {
        Unsafe.SizeOf<BlockQ4_0>().Should().Be(GgmlType.Q4_0.Info().BytesPerBlock).And.Be(18);
        Unsafe.SizeOf<BlockQ8_0>().Should().Be(GgmlType.Q8_0.Info().BytesPerBlock).And.Be(34);
        Unsafe.SizeOf<BlockQ8_1>().Should().Be(GgmlType.Q8_1.Info().BytesPerBlock).And.Be(36);
        Unsafe.SizeOf<BlockQ8_K>().Should().Be(GgmlType.Q8_K.Info().BytesPerBlock).And.Be(292);
        Unsafe.SizeOf<BlockQ5_0>().Should().Be(GgmlType.Q5_0.Info().BytesPerBlock).And.Be(22);
        Unsafe.SizeOf<BlockQ4_K>().Should().Be(GgmlType.Q4_K.Info().BytesPerBlock).And.Be(144);
        Unsafe.SizeOf<BlockQ6_K>().Should().Be(GgmlType.Q6_K.Info().BytesPerBlock).And.Be(210);
        Unsafe.SizeOf<BlockQ4_1>().Should().Be(GgmlType.Q4_1.Info().BytesPerBlock).And.Be(20);
        Unsafe.SizeOf<BlockQ5_1>().Should().Be(GgmlType.Q5_1.Info().BytesPerBlock).And.Be(24);
        Unsafe.SizeOf<BlockIQ4_NL>().Should().Be(GgmlType.IQ4_NL.Info().BytesPerBlock).And.Be(18);
        Unsafe.SizeOf<BlockIQ4_XS>().Should().Be(GgmlType.IQ4_XS.Info().BytesPerBlock).And.Be(136);
        Unsafe.SizeOf<BlockQ5_K>().Should().Be(GgmlType.Q5_K.Info().BytesPerBlock).And.Be(176);
        Unsafe.SizeOf<BlockQ2_K>().Should().Be(GgmlType.Q2_K.Info().BytesPerBlock).And.Be(84);
        Unsafe.SizeOf<BlockQ3_K>().Should().Be(GgmlType.Q3_K.Info().BytesPerBlock).And.Be(110);
    }

    [Fact]
    public void Priority_types_are_supported()
    {
        foreach (var t in new[] { GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q5_0, GgmlType.Q4_K, GgmlType.Q6_K })
        {
            RowFormats.IsSupported(t).Should().BeTrue(t.ToString());
            RowFormats.For(t).Type.Should().Be(t);
        }
        RowFormats.IsSupported(GgmlType.IQ2_XXS).Should().BeFalse();
        FluentActions.Invoking(() => RowFormats.For(GgmlType.IQ2_XXS)).Should().Throw<NotSupportedException>();
    }

    [Theory, MemberData(nameof(Types))]
    public void Fast_dequantize_equals_reference_exactly(GgmlType t)
    {
        var f = RowFormats.For(t);
        var rng = new Random(1234 + (int)t);
        foreach (int k in QuantTestData.Lengths(f.BlockSize, 1))
        {
            var row = QuantTestData.RandomRow(t, k, rng);
            var a = new float[k];
            var b = new float[k];
            f.DequantizeRowReference(row, a);
            f.DequantizeRow(row, b);
            for (int i = 0; i < k; i++)
                if (BitConverter.SingleToInt32Bits(a[i]) != BitConverter.SingleToInt32Bits(b[i]))
                    Assert.Fail($"{t} k={k} element {i}: reference {a[i]} fast {b[i]}");
        }
    }

    [Theory, MemberData(nameof(Types))]
    public void Dots_agree_with_each_other_and_with_float_math(GgmlType t)
    {
        var f = RowFormats.For(t);
        int actBlock = f.ActivationType.Info().BlockSize;
        var rng = new Random(99 + (int)t);
        foreach (int k in QuantTestData.Lengths(f.BlockSize, actBlock))
        {
            for (int rep = 0; rep < 3; rep++)
            {
                var row = QuantTestData.RandomRow(t, k, rng);
                var x = QuantTestData.RandomActivations(k, rng);
                var act = new byte[f.ActivationBytes(k)];
                f.QuantizeActivations(x, act);

                float reference = f.DotRowReference(row, act, k);
                float fast = f.DotRow(row, act, k);

                // Exact float dot of what the kernels actually multiply: dequantized weights, dequantized activations.
                var (exact, magnitude) = QuantTestData.DequantizedDot(f, row, act, k);

                if (f.ActivationType == GgmlType.Q8_1) exact += Q8_1MinCorrection(row, act, k, f.BytesPerBlock);

                double tol = 2e-5 * magnitude + 1e-6;
                Math.Abs(reference - exact).Should().BeLessThanOrEqualTo(tol, $"{t} k={k}: reference {reference} vs exact {exact}");
                Math.Abs((double)fast - reference).Should().BeLessThanOrEqualTo(tol, $"{t} k={k}: fast {fast} vs reference {reference}");
            }
        }
    }

    /// <summary>DotRow (AVX2, portable Vector128 or scalar, whichever this process runs: CI repeats the suite
    /// under DOTNET_EnableAVX2=0 and DOTNET_EnableHWIntrinsic=0) against DotRowReference at every block count
    /// up to 256 elements (at least 8 blocks) and two large odd counts. The integer sums are exact on every path,
    /// so only the float accumulation order differs: 1e-5 of the sum of |terms| bounds that.</summary>
    [Theory, MemberData(nameof(Types))]
    public void DotRow_matches_DotRowReference_at_every_length(GgmlType t)
    {
        var f = RowFormats.For(t);
        int unit = Math.Max(f.BlockSize, f.ActivationType.Info().BlockSize);
        var lengths = Enumerable.Range(0, Math.Max(256 / unit, 8) + 1).Select(n => n * unit).Concat([unit * 37, unit * 101]);
        var rng = new Random(4242 + (int)t);
        foreach (int k in lengths)
        {
            for (int rep = 0; rep < 4; rep++)
            {
                var row = QuantTestData.RandomRow(t, k, rng);
                var x = QuantTestData.RandomActivations(k, rng);
                var act = new byte[f.ActivationBytes(k)];
                f.QuantizeActivations(x, act);
                float reference = f.DotRowReference(row, act, k);
                float fast = f.DotRow(row, act, k);

                var (_, magnitude) = QuantTestData.DequantizedDot(f, row, act, k);
                double tol = 1e-5 * magnitude + 1e-6;
                Math.Abs((double)fast - reference).Should().BeLessThanOrEqualTo(tol, $"{t} k={k} rep {rep}: DotRow {fast} vs reference {reference}");
            }
        }
    }

    /// <summary>Q4_1/Q5_1 dots take the min term as m * s, with s = d * sum(q) rounded to f16 by the Q8_1
    /// quantizer, not as m times the exact sum of the dequantized activations: add that difference.</summary>
    static double Q8_1MinCorrection(byte[] row, byte[] act, int k, int bytesPerBlock)
    {
        double c = 0;
        for (int b = 0; b < k / 32; b++)
        {
            double m = (double)BitConverter.ToHalf(row, b * bytesPerBlock + 2);
            double d = (double)BitConverter.ToHalf(act, b * 36);
            double s = (double)BitConverter.ToHalf(act, b * 36 + 2);
            int sum = 0;
            for (int j = 0; j < 32; j++) sum += (sbyte)act[b * 36 + 4 + j];
            c += m * (s - (double)(float)d * sum);
        }
        return c;
    }

    [Theory, MemberData(nameof(Types))]
    public void MatVecRows_matches_DotRow(GgmlType t)
    {
        var f = RowFormats.For(t);
        int k = Math.Max(f.BlockSize, f.ActivationType.Info().BlockSize) * 3;
        int rows = 5;
        var rng = new Random(7);
        var rowLen = QuantTestData.RandomRow(t, k, rng).Length;
        var w = new byte[rowLen * rows];
        for (int r = 0; r < rows; r++) QuantTestData.RandomRow(t, k, rng).CopyTo(w, r * rowLen);
        var act = new byte[f.ActivationBytes(k)];
        f.QuantizeActivations(QuantTestData.RandomActivations(k, rng), act);

        var y = new float[rows];
        RowFormats.MatVecRows(f, w, rowLen, k, act, y, 1, 4);
        y[0].Should().Be(0);
        y[4].Should().Be(0);
        for (int r = 1; r < 4; r++)
            y[r].Should().Be(f.DotRow(w.AsSpan(r * rowLen, rowLen), act, k));
    }

    /// <summary>Long F16 rows take the decode kernel that interleaves four rows: every row keeps the one-row bits,
    /// with zeros, subnormals and infinities scattered through the rows (the exact conversion) and a tail after the
    /// last whole 16, and a row left over after the groups of four.</summary>
    [Fact]
    public void Long_F16_rows_four_at_a_time_keep_the_one_row_bits()
    {
        var f = RowFormats.For(GgmlType.F16);
        const int k = 4096 + 32 + 16 + 5, rows = 6;
        var rng = new Random(21);
        var rowLen = QuantTestData.RandomRow(GgmlType.F16, k, rng).Length;
        var w = new byte[rowLen * rows];
        for (int r = 0; r < rows; r++) QuantTestData.RandomRow(GgmlType.F16, k, rng).CopyTo(w, r * rowLen);
        var halves = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(w.AsSpan());
        ushort[] specials = [0x0000, 0x8000, 0x0001, 0x83ff, 0x03ff];
        for (int i = 0; i < halves.Length; i += 1 + rng.Next(300)) halves[i] = specials[rng.Next(specials.Length)];
        var act = new byte[f.ActivationBytes(k)];
        f.QuantizeActivations(QuantTestData.RandomActivations(k, rng), act);
        var y = new float[rows];
        RowFormats.MatVecRows(f, w, rowLen, k, act, y, 1, 6);
        y[0].Should().Be(0);
        for (int r = 1; r < rows; r++)
            BitConverter.SingleToUInt32Bits(y[r]).Should().Be(BitConverter.SingleToUInt32Bits(f.DotRow(w.AsSpan(r * rowLen, rowLen), act, k)), $"row {r}");
    }

    /// <summary>The batched (prompt) kernel gives every (row, token) the bits of the one-token dot, for token counts
    /// around its groups of four, rows inside a larger output (a tile of four rows and one row left over), and row
    /// lengths below and above eight blocks (the tiled Q8_0 kernel converts activation scales eight at a time).</summary>
    [Theory, MemberData(nameof(Types))]
    public unsafe void MatMulRows_gives_every_row_and_token_the_bits_of_DotRow(GgmlType t)
    {
        var f = RowFormats.For(t);
        int unit = Math.Max(f.BlockSize, f.ActivationType.Info().BlockSize);
        // Float types (blocks of 1) also at lengths that reach their 16- and 32-wide vector loops and leave a tail.
        foreach (int k in unit == 1 ? new[] { 5, 83, 131 } : [unit * 5, unit * 11])
            MatMulRowsMatchesDotRow(f, t, k);
    }

    unsafe void MatMulRowsMatchesDotRow(IRowFormat f, GgmlType t, int k)
    {
        int rows = 7;
        var rng = new Random(11 + k);
        var rowLen = QuantTestData.RandomRow(t, k, rng).Length;
        var w = new byte[rowLen * rows];
        for (int r = 0; r < rows; r++) QuantTestData.RandomRow(t, k, rng).CopyTo(w, r * rowLen);
        int actBytes = f.ActivationBytes(k);
        foreach (int tokens in new[] { 1, 3, 4, 5, 9 })
        {
            var acts = new byte[actBytes * tokens];
            for (int i = 0; i < tokens; i++)
                f.QuantizeActivations(QuantTestData.RandomActivations(k, rng), acts.AsSpan(i * actBytes, actBytes));
            var y = new float[rows * tokens];
            fixed (byte* wp = w)
                RowFormats.MatMulRows(f, wp, rowLen, k, acts, actBytes, tokens, y, rows, 1, 6);
            for (int i = 0; i < tokens; i++)
            {
                y[i * rows].Should().Be(0, "row 0 is outside the range");
                y[i * rows + 6].Should().Be(0, "row 6 is outside the range");
                for (int r = 1; r < 6; r++)
                    y[i * rows + r].Should().Be(f.DotRow(w.AsSpan(r * rowLen, rowLen), acts.AsSpan(i * actBytes, actBytes), k),
                        $"{t}: token {i} of {tokens}, row {r}");
            }
        }
    }

    [Fact]
    public void Bad_arguments_are_rejected()
    {
        var f = RowFormats.For(GgmlType.Q4_0);
        FluentActions.Invoking(() => f.DequantizeRow(new byte[18], new float[33])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => f.DequantizeRow(new byte[17], new float[32])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => f.DotRow(new byte[18], new byte[33], 32)).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => f.QuantizeActivations(new float[32], new byte[33])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => RowFormats.MatVecRows(f, new byte[36], 18, 32, new byte[34], new float[2], 0, 3))
            .Should().Throw<ArgumentException>();
    }
}
