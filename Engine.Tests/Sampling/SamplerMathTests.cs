using Engine.Sampling;

namespace Engine.Tests.Sampling;

public class SamplerMathTests
{
    [Fact]
    public void Softmax_is_stable_for_huge_logits_and_minus_infinity()
    {
        float[] src = [1e4f, 1e4f - 1f, float.NegativeInfinity, -1e4f];
        var dst = new float[4];
        Sampler.Softmax(src, dst);
        dst.Should().OnlyContain(p => float.IsFinite(p) && p >= 0f);
        var e = MathF.Exp(-1f);
        dst[0].Should().BeApproximately(1f / (1f + e), 1e-6f);
        dst[1].Should().BeApproximately(e / (1f + e), 1e-6f);
        dst[2].Should().Be(0f);
        dst[3].Should().Be(0f);
        dst.Sum().Should().BeApproximately(1f, 1e-6f);
    }

    [Fact]
    public void Softmax_matches_the_definition_on_ordinary_values()
    {
        float[] src = [0.5f, -1f, 2f, 0f];
        var dst = new float[4];
        Sampler.Softmax(src, dst);
        var sum = src.Sum(x => Math.Exp(x));
        for (var i = 0; i < 4; i++) dst[i].Should().BeApproximately((float)(Math.Exp(src[i]) / sum), 1e-6f);
    }

    [Fact]
    public void Softmax_rejects_nan_inf_all_masked_and_bad_lengths()
    {
        var dst = new float[2];
        FluentActions.Invoking(() => Sampler.Softmax([float.NaN, 1f], dst)).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => Sampler.Softmax([float.PositiveInfinity, 1f], dst)).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => Sampler.Softmax([float.NegativeInfinity, float.NegativeInfinity], dst)).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => Sampler.Softmax([1f, 2f, 3f], dst)).Should().Throw<ArgumentException>();
    }

    [Fact]
    public void Top_selector_matches_a_full_sort_including_ties()
    {
        var rng = new SamplerRng(5);
        var logits = new float[3000];
        for (var i = 0; i < logits.Length; i++) logits[i] = (int)(rng.NextFloat() * 50); // many ties
        var ids = Enumerable.Range(0, logits.Length).ToArray();
        var expected = ids.OrderByDescending(i => logits[i]).ThenBy(i => i).ToArray();
        foreach (var k in new[] { 1, 2, 40, 777, 3000, 5000 })
        {
            var dstIds = new int[Math.Min(k, logits.Length)];
            var dstLogits = new float[dstIds.Length];
            TopSelector.Select(ids, logits, k, dstIds, dstLogits).Should().Be(dstIds.Length);
            dstIds.Should().Equal(expected.Take(dstIds.Length));
            dstLogits.Should().Equal(expected.Take(dstIds.Length).Select(i => logits[i]));
        }
    }
}
