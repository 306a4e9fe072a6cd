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
    [InlineData(nameof(RopeStyle.Normal), nameof(KvElementType.F32), 4, 9, 32)]
    [InlineData(nameof(RopeStyle.NeoX), nameof(KvElementType.F32), 4, 9, 32)]
    [InlineData(nameof(RopeStyle.Normal), nameof(KvElementType.F16), 4, 9, 32)]
    [InlineData(nameof(RopeStyle.NeoX), nameof(KvElementType.Q8_0), 4, 9, 32)]
    // Blocks of 32 and 45 rows: whole groups of eight keys, remainders, and tiles of 8 query rows with a short last one.
    [InlineData(nameof(RopeStyle.NeoX), nameof(KvElementType.F32), 32, 45, 32)]
    [InlineData(nameof(RopeStyle.Normal), nameof(KvElementType.F16), 32, 45, 32)]
    // Real head widths: 64 and 128 values reach the 16-lane accumulation (64 values per broadcast).
    [InlineData(nameof(RopeStyle.NeoX), nameof(KvElementType.F16), 32, 45, 128)]
    [InlineData(nameof(RopeStyle.Normal), nameof(KvElementType.F32), 4, 9, 64)]
    public void Rope_and_paged_attention_match_reference(string styleName, string typeName, int blockTokens, int tokens, int dim)
    {
        var style = Enum.Parse<RopeStyle>(styleName); // RopeStyle is internal: a public theory takes its name
        var type = Enum.Parse<KvElementType>(typeName);
        var rng = new Random(3);
        using var backend = new CpuBackend(2);
        const int heads = 4, kvHeads = 2;
        int blocks = (tokens + blockTokens - 1) / blockTokens;
        var rope = new RopeParameters(dim, dim, style, 10000, RopeScaling.None, null);
        var q = Random(rng, tokens * heads * dim); var k = Random(rng, tokens * kvHeads * dim); var v = Random(rng, tokens * kvHeads * dim);
        var bq = Load(backend, q); var bk = Load(backend, k); var bv = Load(backend, v);
        // The blocks stored in reverse order in the pool (one block more than needed): the block table does the addressing.
        var batch = new ForwardBatch(blockTokens);
        batch.Add(new int[tokens], 0, Enumerable.Range(0, blocks).Select(i => blocks - i).ToArray(), LogitsWanted.None);
        backend.Rope(bq, batch, heads, rope);
        backend.Rope(bk, batch, kvHeads, rope);
        var ropedQ = new float[q.Length]; backend.Read(bq, 0, ropedQ);
        var ropedK = new float[k.Length]; backend.Read(bk, 0, ropedK);
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
            {
                var head = q.AsSpan((t * heads + h) * dim, dim).ToArray();
                ReferenceKernels.RopeHead(head, t, rope);
                Close(ropedQ.AsSpan((t * heads + h) * dim, dim), head, 1e-6f, $"rope t={t} h={h}");
            }

        using var pool = backend.CreateKvPool(new KvPoolShape(1, blocks + 1, blockTokens, kvHeads * dim, kvHeads * dim, type));
        backend.StoreKv(pool, 0, batch, bk, bv);
        var output = backend.Allocate("out", tokens * heads * dim);
        backend.Attention(bq, pool, 0, batch, heads, kvHeads, dim, dim, output);
        var actual = new float[tokens * heads * dim]; backend.Read(output, 0, actual);
        // The reference reads the keys and values as the pool holds them (rounded to its element type).
        var storedK = RoundTrip(ropedK, kvHeads * dim, type); var storedV = RoundTrip(v, kvHeads * dim, type);
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
            {
                int kvh = h / (heads / kvHeads);
                var expected = new float[dim];
                ReferenceKernels.AttendHead(ropedQ.AsSpan((t * heads + h) * dim, dim),
                    j => storedK.AsMemory((j * kvHeads + kvh) * dim, dim), j => storedV.AsMemory((j * kvHeads + kvh) * dim, dim), t + 1, expected);
                Close(actual.AsSpan((t * heads + h) * dim, dim), expected, 1e-5f, $"attention t={t} h={h}");
            }
    }

    [Theory]
    [InlineData(3, 128)] // a pair of heads and a single one
    [InlineData(6, 64)]  // Qwen2.5-1.5B's group: three pairs
    [InlineData(7, 128)] // Qwen2.5-7B's group
    public void Heads_attended_in_pairs_give_the_bits_of_each_head_alone(int group, int dim)
    {
        // The attention reads each key and value once for two heads of a row; every head's result must still be the
        // one it gets alone (batch invariance rests on it), so one KV head's group is compared with each query alone.
        const int blockTokens = 32, tokens = 45;
        var rng = new Random(11);
        using var backend = new CpuBackend(2);
        int blocks = (tokens + blockTokens - 1) / blockTokens;
        var q = Random(rng, tokens * group * dim); var k = Random(rng, tokens * dim); var v = Random(rng, tokens * dim);
        var batch = new ForwardBatch(blockTokens);
        batch.Add(new int[tokens], 0, Enumerable.Range(0, blocks).ToArray(), LogitsWanted.None);
        using var pool = backend.CreateKvPool(new KvPoolShape(1, blocks, blockTokens, dim, dim, KvElementType.F16));
        backend.StoreKv(pool, 0, batch, Load(backend, k), Load(backend, v));
        var grouped = backend.Allocate("grouped", tokens * group * dim);
        backend.Attention(Load(backend, q), pool, 0, batch, group, 1, dim, dim, grouped);
        var together = new float[tokens * group * dim]; backend.Read(grouped, 0, together);
        for (int h = 0; h < group; h++)
        {
            var single = new float[tokens * dim];
            for (int t = 0; t < tokens; t++) q.AsSpan((t * group + h) * dim, dim).CopyTo(single.AsSpan(t * dim));
            var output = backend.Allocate($"head {h}", tokens * dim);
            backend.Attention(Load(backend, single), pool, 0, batch, 1, 1, dim, dim, output);
            var alone = new float[tokens * dim]; backend.Read(output, 0, alone);
            for (int t = 0; t < tokens; t++)
                together.AsSpan((t * group + h) * dim, dim).ToArray().Should().Equal(alone.AsSpan(t * dim, dim).ToArray(), $"head {h}, row {t}");
        }
    }

    static unsafe float[] RoundTrip(float[] rows, int width, KvElementType type)
    {
        var result = new float[rows.Length];
        var bytes = new byte[KvPoolShape.RowBytes(width, type)];
        fixed (byte* b = bytes) fixed (float* r = result)
            for (int i = 0; i < rows.Length / width; i++)
            {
                CpuKvPool.WriteRow(rows.AsSpan(i * width, width), type, b);
                CpuKvPool.ReadRow(b, type, 0, width, r + i * width);
            }
        return result;
    }

    [Theory]
    [InlineData(nameof(KvElementType.F16))]
    [InlineData(nameof(KvElementType.Q8_0))]
    public void Kv_rows_round_trip_as_ggml_rounds_them(string typeName)
    {
        var type = Enum.Parse<KvElementType>(typeName);
        var x = Random(new Random(5), 64);
        if (type == KvElementType.F16)
        {
            // Zeros, subnormal halves and a value past the half range in some 16-value groups: the reader's fast path
            // (all normal) and its exact path must give the same conversions.
            x[3] = 0; x[17] = -0f; x[20] = 3e-6f; x[40] = 1e5f; x[41] = -1e5f;
        }
        var stored = RoundTrip(x, 64, type);
        for (int i = 0; i < x.Length; i++)
        {
            float expected = type == KvElementType.F16 ? (float)(Half)x[i] : stored[i];
            BitConverter.SingleToInt32Bits(stored[i]).Should().Be(BitConverter.SingleToInt32Bits(expected), $"value {i} ({x[i]})");
        }
        if (type == KvElementType.Q8_0)
            for (int b = 0; b < 2; b++)
            {
                float amax = x.Skip(b * 32).Take(32).Max(MathF.Abs);
                float scale = (float)(Half)(amax / 127);
                for (int i = b * 32; i < b * 32 + 32; i++)
                    Math.Abs(stored[i] - x[i]).Should().BeLessThanOrEqualTo(scale * 0.5f + 1e-6f, "a q8_0 value is within half a level");
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
