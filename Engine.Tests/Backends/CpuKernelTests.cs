using Engine.Backends;
using Engine.Backends.Cpu;
using Engine.Models;

namespace Engine.Tests.Backends;

/// <summary>The CPU backend's float kernels against the plain scalar references beside them, over every
/// length 1..256 (every SIMD tail) and a large odd one.</summary>
public class CpuKernelTests
{
    static IEnumerable<int> Lengths => Enumerable.Range(1, 256).Append(4097);

    static float[] Random(Random rng, int n, float scale = 1) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();

    static void Close(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, float relative, string what)
    {
        for (int i = 0; i < expected.Length; i++)
            Math.Abs(actual[i] - expected[i]).Should().BeLessThanOrEqualTo(relative * Math.Max(1f, Math.Abs(expected[i])), $"{what}[{i}]");
    }

    [Fact]
    public void RmsNorm_matches_reference()
    {
        var rng = new Random(42);
        using var backend = new CpuBackend(2);
        foreach (int n in Lengths)
        {
            var x = Random(rng, n, 3); var w = new WeightVector("w", Random(rng, n));
            var bx = backend.Allocate("x", n); var by = backend.Allocate("y", n);
            backend.Write(bx, 0, x);
            backend.RmsNorm(bx, w, 1e-5f, 1, by);
            var actual = new float[n]; backend.Read(by, 0, actual);
            var expected = new float[n]; ReferenceKernels.RmsNorm(x, w.Values, 1e-5f, expected);
            Close(actual, expected, 1e-5f, $"rmsnorm n={n}");
        }
    }

    [Fact]
    public void SwiGlu_and_softmax_match_reference_including_huge_scores()
    {
        var rng = new Random(7);
        using var backend = new CpuBackend(2);
        foreach (int n in Lengths)
        {
            var g = Random(rng, n, 8); var u = Random(rng, n, 2);
            var by = backend.Allocate("y", n);
            backend.SwiGlu(Load(backend, g), Load(backend, u), n, by);
            var actual = new float[n]; backend.Read(by, 0, actual);
            var expected = new float[n]; ReferenceKernels.SwiGlu(g, u, expected);
            Close(actual, expected, 1e-5f, $"swiglu n={n}");

            var scores = Random(rng, n, 1e4f); // far above exp's float range without the max subtraction
            var fast = (float[])scores.Clone(); CpuBackend.StableSoftmax(fast);
            var reference = new float[n]; ReferenceKernels.Softmax(scores, reference);
            fast.Should().OnlyContain(v => float.IsFinite(v));
            Close(fast, reference, 1e-5f, $"softmax n={n}");
        }
    }

    [Theory]
    [InlineData(nameof(RopeStyle.Normal))]
    [InlineData(nameof(RopeStyle.NeoX))]
    public void Rope_and_attention_match_reference(string styleName)
    {
        var style = Enum.Parse<RopeStyle>(styleName); // RopeStyle is internal: a public theory takes its name
        var rng = new Random(3);
        using var backend = new CpuBackend(2);
        const int heads = 4, kvHeads = 2, dim = 16, tokens = 9;
        var rope = new RopeParameters(dim, dim, style, 10000, RopeScaling.None, null);
        var q = Random(rng, tokens * heads * dim); var k = Random(rng, tokens * kvHeads * dim); var v = Random(rng, tokens * kvHeads * dim);
        var bq = Load(backend, q); var bk = Load(backend, k); var bv = Load(backend, v);
        backend.Rope(bq, tokens, heads, 0, rope);
        backend.Rope(bk, tokens, kvHeads, 0, rope);
        var ropedQ = new float[q.Length]; backend.Read(bq, 0, ropedQ);
        var ropedK = new float[k.Length]; backend.Read(bk, 0, ropedK);
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
            {
                var head = q.AsSpan((t * heads + h) * dim, dim).ToArray();
                ReferenceKernels.RopeHead(head, t, rope);
                Close(ropedQ.AsSpan((t * heads + h) * dim, dim), head, 1e-6f, $"rope t={t} h={h}");
            }

        using var cache = backend.CreateKvCache(1, tokens, kvHeads * dim, kvHeads * dim);
        backend.StoreKv(cache, 0, 0, tokens, bk, bv);
        var output = backend.Allocate("out", tokens * heads * dim);
        backend.Attention(bq, cache, 0, 0, tokens, heads, kvHeads, dim, dim, output);
        var actual = new float[tokens * heads * dim]; backend.Read(output, 0, actual);
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
            {
                int kvh = h / (heads / kvHeads);
                var expected = new float[dim];
                ReferenceKernels.AttendHead(ropedQ.AsSpan((t * heads + h) * dim, dim),
                    j => ropedK.AsMemory((j * kvHeads + kvh) * dim, dim), j => v.AsMemory((j * kvHeads + kvh) * dim, dim), t + 1, expected);
                Close(actual.AsSpan((t * heads + h) * dim, dim), expected, 1e-5f, $"attention t={t} h={h}");
            }
    }

    [Fact]
    public void Clear_zeroes_only_the_given_length()
    {
        using var backend = new CpuBackend(2);
        var x = Random(new Random(7), 40);
        var buffer = Load(backend, x);
        backend.Clear(buffer, 37);
        var actual = new float[40]; backend.Read(buffer, 0, actual);
        actual.Take(37).Should().OnlyContain(v => v == 0);
        actual.Skip(37).Should().Equal(x.Skip(37));
    }

    static ActivationBuffer Load(IBackend backend, float[] values)
    {
        var buffer = backend.Allocate("in", values.Length);
        backend.Write(buffer, 0, values);
        return buffer;
    }
}
