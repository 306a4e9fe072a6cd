using global::Engine.Quantization;

namespace Engine.Tests.Quantization;

/// <summary><see cref="QuantMath.MakeQxQuants8"/> (eight groups in vector lanes) against the scalar make_qx_quants it
/// stands in for: the same levels and the same scale bits, for every kind of group the quantizers meet.</summary>
public unsafe class QxQuantsLanesTests
{
    const int N = 16;

    /// <summary>Groups of random values at many magnitudes, with the edge cases make_qx_quants branches on: an all-zero
    /// group, one below its 1e-15 floor, one whose largest value is negative, repeated largest values (the first wins),
    /// values on exact level boundaries, and a group with a single non-zero value.</summary>
    static float[][] Groups(int seed)
    {
        var random = new Random(seed);
        var groups = new List<float[]>();
        for (int g = 0; g < 64; g++)
        {
            float magnitude = MathF.Pow(10, random.Next(-6, 4));
            groups.Add(Enumerable.Range(0, N).Select(_ => (float)(random.NextDouble() * 2 - 1) * magnitude).ToArray());
        }
        groups.Add(new float[N]);
        groups.Add(Enumerable.Range(0, N).Select(i => i % 2 == 0 ? 1e-16f : -5e-16f).ToArray());
        groups.Add(Enumerable.Range(0, N).Select(i => i == 3 ? -7f : i * 0.25f).ToArray());
        groups.Add(Enumerable.Range(0, N).Select(i => i % 4 == 0 ? 2f : i % 4 == 1 ? -2f : i * 0.1f).ToArray());
        groups.Add(Enumerable.Range(0, N).Select(i => (i - 8) / 32f).ToArray());
        groups.Add(Enumerable.Range(0, N).Select(i => i == 11 ? 0.5f : 0f).ToArray());
        while (groups.Count % 8 != 0) groups.Add(Enumerable.Range(0, N).Select(_ => (float)random.NextDouble()).ToArray());
        return groups.ToArray();
    }

    [Theory]
    [InlineData(32, false)] // Q6_K: levels -32..31, weights x^2 (quantize_row_q6_K_ref)
    [InlineData(32, true)]  // Q6_K with an importance matrix
    [InlineData(8, false)]
    [InlineData(16, true)]
    public void Eight_lanes_give_the_scalar_levels_and_scales_bit_for_bit(int nmax, bool weighted)
    {
        var groups = Groups(nmax * 2 + (weighted ? 1 : 0));
        var random = new Random(7);
        var weights = groups.Select(_ => Enumerable.Range(0, N).Select(_ => (float)random.NextDouble() * 3).ToArray()).ToArray();
        for (int first = 0; first < groups.Length; first += 8)
        {
            var xT = new float[8 * N];
            var qwT = new float[8 * N];
            for (int g = 0; g < 8; g++)
                for (int i = 0; i < N; i++) { xT[8 * i + g] = groups[first + g][i]; qwT[8 * i + g] = weights[first + g][i]; }
            var lanesLevels = new sbyte[8 * N];
            var lanesScales = new float[8];
            fixed (float* x = xT) fixed (float* qw = qwT) fixed (sbyte* l = lanesLevels) fixed (float* s = lanesScales)
                QuantMath.MakeQxQuants8(N, nmax, x, l, s, weighted ? qw : null);
            for (int g = 0; g < 8; g++)
            {
                var levels = new sbyte[N];
                float scale;
                fixed (float* x = groups[first + g]) fixed (float* qw = weights[first + g]) fixed (sbyte* l = levels)
                    scale = QuantMath.MakeQxQuants(N, nmax, x, l, 1, weighted ? qw : null);
                BitConverter.SingleToInt32Bits(lanesScales[g]).Should().Be(BitConverter.SingleToInt32Bits(scale), $"scale of group {first + g}");
                lanesLevels.AsSpan(g * N, N).ToArray().Should().Equal(levels, $"levels of group {first + g}");
            }
        }
    }

    [Fact]
    public void Q6_K_rows_equal_the_scalar_quantizer_on_a_large_random_row()
    {
        // The Q6_K quantizer runs the lanes; rebuilding its bytes from scalar make_qx_quants calls must give the same
        // sub-block scales, which decide every other byte.
        var random = new Random(3);
        var row = Enumerable.Range(0, 256 * 64).Select(_ => (float)(random.NextDouble() * 2 - 1) * MathF.Pow(10, random.Next(-3, 2))).ToArray();
        var bytes = new byte[RowEncoder.RowBytes(Engine.Formats.GgmlType.Q6_K, row.Length)];
        Q6_KFormat.Instance.QuantizeRowReference(row, bytes);
        var back = new float[row.Length];
        Q6_KFormat.Instance.DequantizeRow(bytes, back);
        var levels = new sbyte[16];
        for (int block = 0; block < row.Length / 256; block++)
        {
            var scales = new float[16];
            fixed (float* x = row) fixed (sbyte* l = levels)
                for (int sub = 0; sub < 16; sub++) scales[sub] = QuantMath.MakeQxQuants(16, 32, x + 256 * block + 16 * sub, l, 1);
            float maxScale = scales.MaxBy(MathF.Abs);
            float iscale = -128f / maxScale;
            for (int sub = 0; sub < 16; sub++)
                ((sbyte)bytes[210 * block + 192 + sub]).Should().Be((sbyte)Math.Min(127, QuantMath.NearestInt(iscale * scales[sub])), $"block {block} sub-block {sub}");
        }
    }
}
