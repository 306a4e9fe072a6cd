using System.Runtime.CompilerServices;
using global::Engine.Quantization;
using global::Engine.Quantization.Repacked;

namespace Engine.Tests.Quantization;

/// <summary>The checks of <see cref="RepackedLayoutChecks{TLayout}"/> for every repacked layout. The layouts are
/// internal to the engine and xunit discovers only public classes, so each fact is a theory over the layout's name.</summary>
public class RepackedLayoutTests
{
    public static TheoryData<string> Layouts => [nameof(Q4_Kx8), nameof(Q4_Kx16), nameof(Q6_Kx8), nameof(Q6_Kx16), nameof(Q4_0x8), nameof(Q8_0x8), nameof(F16x8), nameof(BF16x8)];

    static IRepackedLayoutChecks Checks(string layout) => layout switch
    {
        nameof(Q4_Kx8) => new Q4_Kx8Checks(),
        nameof(Q4_Kx16) => new Q4_Kx16Checks(),
        nameof(Q6_Kx8) => new Q6_Kx8Checks(),
        nameof(Q6_Kx16) => new Q6_Kx16Checks(),
        nameof(Q4_0x8) => new Q4_0x8Checks(),
        nameof(Q8_0x8) => new Q8_0x8Checks(),
        nameof(F16x8) => new F16x8Checks(),
        nameof(BF16x8) => new BF16x8Checks(),
        _ => throw new ArgumentException($"no checks for the repacked layout '{layout}'", nameof(layout)),
    };

    [Theory, MemberData(nameof(Layouts))]
    public void A_group_block_is_its_rows_source_blocks(string layout) => Checks(layout).A_group_block_is_its_rows_source_blocks();

    [Theory, MemberData(nameof(Layouts))]
    public void Repack_round_trips_every_row_exactly(string layout) => Checks(layout).Repack_round_trips_every_row_exactly();

    [Theory, MemberData(nameof(Layouts))]
    public void Fast_dot_and_decode_match_reference_bits_and_the_row_kernels(string layout) =>
        Checks(layout).Fast_dot_and_decode_match_reference_bits_and_the_row_kernels();

    [Theory, MemberData(nameof(Layouts))]
    public void MatMul_gives_each_token_the_decode_bits(string layout) => Checks(layout).MatMul_gives_each_token_the_decode_bits();

    /// <summary>The 16-row layouts compute each row as the 8-row ones do: a machine that repacks into one or the other
    /// gets the same logits, prompt and decode alike.</summary>
    [Fact]
    public void Q4_K_in_16_row_groups_gives_the_8_row_layouts_bits() => SameBitsAsEightRowGroups<Q4_Kx16, Q4_Kx8>([0, 2]);

    [Fact]
    public void Q6_K_in_16_row_groups_gives_the_8_row_layouts_bits() => SameBitsAsEightRowGroups<Q6_Kx16, Q6_Kx8>([208]);

    static void SameBitsAsEightRowGroups<TWide, TNarrow>(int[] halfOffsets)
        where TWide : RepackedMatrix<TWide>, IRepackedLayout where TNarrow : RepackedMatrix<TNarrow>, IRepackedLayout
    {
        var rng = new Random(4);
        const int rows = 32, tokens = 13; // an 8-token tile, a 4-token one and a single token
        var format = TNarrow.Source;
        foreach (int k in new[] { 256, 1536, 8960 })
        {
            var src = new byte[rows * format.RowBytes(k)];
            rng.NextBytes(src);
            for (int block = 0; block < src.Length / format.BytesPerBlock; block++)
                foreach (int offset in halfOffsets) // the f16 scales: finite, small
                    BitConverter.TryWriteBytes(src.AsSpan(block * format.BytesPerBlock + offset), Fp16.FromSingle((float)(rng.NextDouble() * 1e-3)));
            var narrow = new byte[RepackedMatrix<TNarrow>.PackedBytes(rows, k)];
            var wide = new byte[RepackedMatrix<TWide>.PackedBytes(rows, k)];
            RepackedMatrix<TNarrow>.Repack(src, format.RowBytes(k), rows, k, narrow);
            RepackedMatrix<TWide>.Repack(src, format.RowBytes(k), rows, k, wide);
            int actBytes = format.ActivationBytes(k);
            var act = new byte[tokens * actBytes];
            for (int t = 0; t < tokens; t++)
                format.QuantizeActivations(QuantTestData.RandomActivations(k, rng), act.AsSpan(t * actBytes, actBytes));
            var yNarrow = new float[tokens * rows];
            var yWide = new float[tokens * rows];
            RepackedMatrix<TNarrow>.MatMul(narrow, rows, k, act, tokens, yNarrow);
            RepackedMatrix<TWide>.MatMul(wide, rows, k, act, tokens, yWide);
            yWide.Select(BitConverter.SingleToInt32Bits).Should().Equal(yNarrow.Select(BitConverter.SingleToInt32Bits), $"k={k}");
            RepackedMatrix<TWide>.MatVec(wide, k, act, yWide, 0, rows / TWide.GroupRows);
            RepackedMatrix<TNarrow>.MatVec(narrow, k, act, yNarrow, 0, rows / TNarrow.GroupRows);
            yWide.Take(rows).Select(BitConverter.SingleToInt32Bits).Should().Equal(yNarrow.Take(rows).Select(BitConverter.SingleToInt32Bits), $"k={k}, one token");
        }
    }
}

internal interface IRepackedLayoutChecks
{
    void A_group_block_is_its_rows_source_blocks();
    void Repack_round_trips_every_row_exactly();
    void Fast_dot_and_decode_match_reference_bits_and_the_row_kernels();
    void MatMul_gives_each_token_the_decode_bits();
}

/// <summary>A repacked layout (groups of 8 or 16 rows) against the scalar reference (to the bit: the integers are exact and the float
/// steps are the same) and against the row kernels of the unrepacked rows (within the rounding of another
/// accumulation order): repacking round-trips every row, the fast dot and the decode form give the reference's
/// bits, and the prompt form gives every (row, token) the decode bits. One class per layout supplies its lengths and
/// where its f16 scales are. Runs on whichever kernels this process has: CI repeats it without
/// AVX-512, AVX2 and all hardware intrinsics.</summary>
internal abstract class RepackedLayoutChecks<TLayout> : IRepackedLayoutChecks where TLayout : RepackedMatrix<TLayout>, IRepackedLayout
{
    static RowFormat F => TLayout.Source;

    /// <summary>Row lengths for the dot tests: small to the FFN width of Llama-3-8B.</summary>
    protected abstract int[] Lengths { get; }
    /// <summary>A few row lengths for the slower round-trip and prompt tests.</summary>
    protected abstract int[] ShortLengths { get; }
    /// <summary>Byte offsets of the f16 scales within one source block.</summary>
    protected abstract int[] HalfOffsets { get; }
    /// <summary>The size of the layout's group-block struct.</summary>
    protected abstract int GroupStructSize { get; }
    /// <summary>True when the layout promises a row the row kernel's bits (not only the reference's).</summary>
    protected virtual bool RowKernelBits => false;

    /// <summary>One f16 scale as real files have them: from subnormal halves (common in trained weights) to normal
    /// ones, occasionally zero.</summary>
    protected virtual ushort RandomScale(Random rng) => rng.Next(4) switch
    {
        0 => (ushort)rng.Next(1, 0x400),
        1 => Fp16.FromSingle((float)(rng.NextDouble() * 1e-3)),
        2 => Fp16.FromSingle((float)(rng.NextDouble() * 0.05)),
        _ => (ushort)(rng.Next(30) == 0 ? 0 : Fp16.FromSingle((float)(1e-4 + rng.NextDouble() * 1e-2))),
    };

    /// <summary>Rows per group.</summary>
    static int G => TLayout.GroupRows;

    public void A_group_block_is_its_rows_source_blocks()
    {
        int block = TLayout.BlockWidth;
        GroupStructSize.Should().Be(TLayout.GroupBlockBytes).And.Be((int)(G * F.RowBytes(block)));
        RepackedMatrix<TLayout>.PackedBytes(2 * G, 2 * block).Should().Be(2 * 2 * TLayout.GroupBlockBytes);
        RepackedMatrix<TLayout>.CanRepack(2 * G, block).Should().BeTrue();
        RepackedMatrix<TLayout>.CanRepack(G + 4, block).Should().BeFalse($"rows come in groups of {G}");
        RepackedMatrix<TLayout>.CanRepack(2 * G, block + block / 2).Should().BeFalse("rows are whole blocks");
    }

    /// <summary>Random rows: every byte random, then the f16 scales set (sometimes negative) so they stay finite.</summary>
    byte[] RandomRows(int rows, int k, Random rng)
    {
        var bytes = new byte[rows * F.RowBytes(k)];
        rng.NextBytes(bytes);
        for (int block = 0; block < bytes.Length / F.BytesPerBlock; block++)
            foreach (int offset in HalfOffsets)
            {
                ushort h = RandomScale(rng);
                if (rng.Next(10) == 0) h |= 0x8000;
                BitConverter.TryWriteBytes(bytes.AsSpan(block * F.BytesPerBlock + offset), h);
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

    static byte[] Repacked(byte[] src, int rows, int k)
    {
        var packed = new byte[RepackedMatrix<TLayout>.PackedBytes(rows, k)];
        RepackedMatrix<TLayout>.Repack(src, F.RowBytes(k), rows, k, packed);
        return packed;
    }

    static bool SameBits(float a, float b) => BitConverter.SingleToInt32Bits(a) == BitConverter.SingleToInt32Bits(b);

    public void Repack_round_trips_every_row_exactly()
    {
        var rng = new Random(1);
        int rows = 3 * G;
        foreach (int k in ShortLengths)
        {
            var src = RandomRows(rows, k, rng);
            var packed = Repacked(src, rows, k);
            int rowBytes = (int)F.RowBytes(k);
            var expected = new float[k];
            var actual = new float[k];
            for (int r = 0; r < rows; r++)
            {
                F.DequantizeRowReference(src.AsSpan(r * rowBytes, rowBytes), expected);
                RepackedMatrix<TLayout>.DequantizeRow(packed, k, r, actual);
                for (int i = 0; i < k; i++)
                    if (!SameBits(expected[i], actual[i])) Assert.Fail($"k={k} row {r} element {i}: source {expected[i]} repacked {actual[i]}");
            }
        }
    }

    public void Fast_dot_and_decode_match_reference_bits_and_the_row_kernels()
    {
        var rng = new Random(2);
        int rows = 2 * G;
        var fast = new float[G];
        var reference = new float[G];
        foreach (int k in Lengths)
        {
            var src = RandomRows(rows, k, rng);
            var packed = Repacked(src, rows, k);
            int rowBytes = (int)F.RowBytes(k);
            var act = Activations(1, k, rng);
            var matvec = new float[rows];
            RepackedMatrix<TLayout>.MatVec(packed, k, act, matvec, 0, rows / G);
            for (int g = 0; g < rows / G; g++)
            {
                RepackedMatrix<TLayout>.DotReference(packed, g, act, k, reference);
                RepackedMatrix<TLayout>.Dot(packed, g, act, k, fast);
                for (int j = 0; j < G; j++)
                {
                    int r = G * g + j;
                    SameBits(fast[j], reference[j]).Should().BeTrue($"k={k} row {r}: fast {fast[j]} reference {reference[j]}");
                    SameBits(matvec[r], reference[j]).Should().BeTrue($"k={k} row {r}: MatVec {matvec[r]} reference {reference[j]}");
                    var row = src.AsSpan(r * rowBytes, rowBytes);
                    float rowReference = F.DotRowReference(row, act, k);
                    float rowFast = F.DotRow(row, act, k);
                    var (_, magnitude) = QuantTestData.DequantizedDot(F, row.ToArray(), act, k);
                    double tolerance = 1e-5 * magnitude + 1e-30;
                    Math.Abs((double)reference[j] - rowReference).Should().BeLessThanOrEqualTo(tolerance, $"k={k} row {r}: repacked {reference[j]} row reference {rowReference}");
                    Math.Abs((double)reference[j] - rowFast).Should().BeLessThanOrEqualTo(tolerance, $"k={k} row {r}: repacked {reference[j]} row kernel {rowFast}");
                    if (RowKernelBits) SameBits(reference[j], rowFast).Should().BeTrue($"k={k} row {r}: repacked {reference[j]} row kernel {rowFast}");
                }
            }
        }
    }

    /// <summary>The prompt form (8- or 4-token tiles plus single tokens) gives every (row, token) the decode bits.</summary>
    public void MatMul_gives_each_token_the_decode_bits()
    {
        var rng = new Random(3);
        int rows = 3 * G;
        foreach (int k in ShortLengths)
            foreach (int tokens in new[] { 1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 16 })
            {
                var packed = Repacked(RandomRows(rows, k, rng), rows, k);
                int actBytes = F.ActivationBytes(k);
                var act = Activations(tokens, k, rng);
                var y = new float[tokens * rows];
                RepackedMatrix<TLayout>.MatMul(packed, rows, k, act, tokens, y);
                var one = new float[G];
                for (int t = 0; t < tokens; t++)
                    for (int g = 0; g < rows / G; g++)
                    {
                        RepackedMatrix<TLayout>.DotReference(packed, g, act.AsSpan(t * actBytes, actBytes), k, one);
                        for (int j = 0; j < G; j++)
                            SameBits(y[t * rows + G * g + j], one[j]).Should().BeTrue(
                                $"k={k} tokens={tokens} token {t} row {G * g + j}: {y[t * rows + G * g + j]} vs {one[j]}");
                    }
            }
    }
}

/// <summary>Every multiple of 256 up to 4096, and 14336. Q4_K blocks hold d and dmin at bytes 0 and 2.</summary>
internal sealed class Q4_Kx8Checks : RepackedLayoutChecks<Q4_Kx8>
{
    protected override int[] Lengths => [.. Enumerable.Range(1, 16).Select(i => 256 * i), 14336];
    protected override int[] ShortLengths => [256, 768, 1280, 4096];
    protected override int[] HalfOffsets => [0, 2];
    protected override int GroupStructSize => Unsafe.SizeOf<BlockQ4_Kx8>();
}

/// <summary>As <see cref="Q4_Kx8Checks"/>: the 16-row layout of AVX-512 machines.</summary>
internal sealed class Q4_Kx16Checks : RepackedLayoutChecks<Q4_Kx16>
{
    protected override int[] Lengths => [.. Enumerable.Range(1, 16).Select(i => 256 * i), 14336];
    protected override int[] ShortLengths => [256, 768, 1280, 4096];
    protected override int[] HalfOffsets => [0, 2];
    protected override int GroupStructSize => Unsafe.SizeOf<BlockQ4_Kx16>();
}

/// <summary>Q6_K blocks end with d (byte 208); subnormal scales are common in trained Q6_K weights.</summary>
internal sealed class Q6_Kx8Checks : RepackedLayoutChecks<Q6_Kx8>
{
    protected override int[] Lengths => [.. Enumerable.Range(1, 16).Select(i => 256 * i), 14336];
    protected override int[] ShortLengths => [256, 768, 1280, 4096];
    protected override int[] HalfOffsets => [208];
    protected override int GroupStructSize => Unsafe.SizeOf<BlockQ6_Kx8>();

    protected override ushort RandomScale(Random rng) => rng.Next(4) switch
    {
        0 or 1 => (ushort)rng.Next(1, 0x400),
        2 => Fp16.FromSingle((float)(rng.NextDouble() * 1e-3)),
        _ => (ushort)(rng.Next(30) == 0 ? 0 : Fp16.FromSingle((float)(1e-5 + rng.NextDouble() * 1e-2))),
    };
}

/// <summary>As <see cref="Q6_Kx8Checks"/>: the 16-row layout of AVX-512 machines.</summary>
internal sealed class Q6_Kx16Checks : RepackedLayoutChecks<Q6_Kx16>
{
    protected override int[] Lengths => [.. Enumerable.Range(1, 16).Select(i => 256 * i), 14336];
    protected override int[] ShortLengths => [256, 768, 1280, 4096];
    protected override int[] HalfOffsets => [208];
    protected override int GroupStructSize => Unsafe.SizeOf<BlockQ6_Kx16>();

    protected override ushort RandomScale(Random rng) => rng.Next(4) switch
    {
        0 or 1 => (ushort)rng.Next(1, 0x400),
        2 => Fp16.FromSingle((float)(rng.NextDouble() * 1e-3)),
        _ => (ushort)(rng.Next(30) == 0 ? 0 : Fp16.FromSingle((float)(1e-5 + rng.NextDouble() * 1e-2))),
    };
}

/// <summary>From one block up, odd block counts included. Q4_0 blocks start with d.</summary>
internal sealed class Q4_0x8Checks : RepackedLayoutChecks<Q4_0x8>
{
    protected override int[] Lengths => [32, 64, 96, 160, 288, 480, 896, 1024, 1568, 2048, 3040, 4096, 4864, 14336];
    protected override int[] ShortLengths => [32, 96, 1248, 4096, 14336];
    protected override int[] HalfOffsets => [0];
    protected override int GroupStructSize => Unsafe.SizeOf<BlockQ4_0x8>();
}

/// <summary>As Q4_0: from one block up, odd block counts included. Q8_0 blocks start with d.</summary>
internal sealed class Q8_0x8Checks : RepackedLayoutChecks<Q8_0x8>
{
    protected override int[] Lengths => [32, 64, 96, 160, 288, 480, 896, 1024, 1568, 2048, 3040, 4096, 4864, 14336];
    protected override int[] ShortLengths => [32, 96, 1248, 4096, 14336];
    protected override int[] HalfOffsets => [0];
    protected override int GroupStructSize => Unsafe.SizeOf<BlockQ8_0x8>();
}

/// <summary>Multiples of 16 from 16 to Qwen2.5-1.5B's FFN width (8960) and Llama-3-8B's (14336). A source "block" is one
/// half, so every half of the random rows is drawn as real weights are: mostly normal, often subnormal, sometimes zero,
/// a tenth negative, and a few large ones. The layout sums in the row kernel's order, so it must give its bits (where the
/// row kernel runs that order: with AVX2 and FMA).</summary>
internal sealed class F16x8Checks : RepackedLayoutChecks<F16x8>
{
    protected override int[] Lengths => [16, 32, 48, 64, 80, 128, 144, 256, 1536, 4096, 8960, 14336];
    protected override int[] ShortLengths => [16, 48, 160];
    protected override int[] HalfOffsets => [0];
    protected override int GroupStructSize => 8 * F16x8.Width * sizeof(ushort);
    // The row kernel sums in the golden order with AVX2 and FMA; its portable paths (the CI's reruns without them) do not.
    protected override bool RowKernelBits => Simd.Avx2Fma;

    protected override ushort RandomScale(Random rng) => rng.Next(8) == 0
        ? Fp16.FromSingle((float)(rng.NextDouble() * 60000))
        : base.RandomScale(rng);
}

/// <summary>Multiples of 32 from 32 to 14336; every bfloat16 drawn from magnitudes of 1e-6 to 1e3, sometimes zero. The
/// layout sums in the row kernel's order, so it must give its bits (with AVX2 and FMA, as for F16).</summary>
internal sealed class BF16x8Checks : RepackedLayoutChecks<BF16x8>
{
    protected override int[] Lengths => [32, 64, 96, 160, 256, 1536, 4096, 8960, 14336];
    protected override int[] ShortLengths => [32, 96, 160];
    protected override int[] HalfOffsets => [0];
    protected override int GroupStructSize => 8 * BF16x8.Width * sizeof(ushort);
    protected override bool RowKernelBits => Simd.Avx2Fma;

    protected override ushort RandomScale(Random rng) => rng.Next(30) == 0
        ? (ushort)0
        : Fp16.SingleToBF16((float)(rng.NextDouble() * Math.Pow(10, rng.Next(-6, 4))));
}
