using Engine.Backends.Cpu;
using Engine.Formats;
using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Backends;

/// <summary>The CPU backend's repacking at load: which matrices it takes, that it can be turned off, and that
/// the model computes the same within float rounding (the golden-logit fixture tests run with it on).</summary>
public class RepackedWeightsTests
{
    static float[] Logits(string path, bool repack, out CpuBackend backend, out LoadedModel model)
    {
        model = LoadedModel.Open(path, new ModelOptions { Threads = 2, RepackWeights = repack });
        backend = (CpuBackend)model.Model.Backend;
        int[] tokens = [1, 20, 30, 40, 50, 60, 70];
        using var cache = model.Model.CreateCache(16);
        var logits = new float[tokens.Length * model.Config.VocabSize];
        model.Model.Forward(tokens, 0, cache, logits); // the prompt tiles (4 tokens) and single tokens
        var next = new float[model.Config.VocabSize];
        model.Model.Forward([5], tokens.Length, cache, next); // the decode kernel
        return [.. logits, .. next];
    }

    /// <summary>Q4_K_M keeps output, attn_v and half the ffn_down in Q6_K, so both k-quant layouts run; the Q6_K
    /// fixture has nothing else; the Q4_0 ones use the Q4_0 layout.</summary>
    [SharedTheory]
    [InlineData("fx-llama-Q4_K_M")]
    [InlineData("fx-llama-Q6_K")]
    [InlineData("fx-llama-Q4_0")]
    [InlineData("fx-qwen2-Q4_0")]
    public void Repacked_model_matches_the_unrepacked_one(string name)
    {
        var path = TestPaths.Shared("fixtures", name + ".gguf")!;
        var on = Logits(path, repack: true, out var withRepack, out var a);
        var off = Logits(path, repack: false, out var without, out var b);
        using (a) using (b)
        {
            if (System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported)
            {
                withRepack.RepackedMatrices.Should().BeGreaterThan(0);
                withRepack.RepackedBytes.Should().BeGreaterThan(0);
            }
            without.RepackedMatrices.Should().Be(0);
            for (int i = 0; i < on.Length; i++)
                Math.Abs(on[i] - off[i]).Should().BeLessThan(1e-3f, $"logit {i}");
        }
    }

    /// <summary>llama.cpp's Q4_0 goldens come from its repacked path (ggml_gemv/gemm_q4_0_8x8_q8_0), whose order
    /// (one FMA of float(block integer) * (d_w * d_x) per row and block) the repacked kernels follow: both ways stay
    /// within the fixture tolerance, and repacking brings the logits closer to the golden.</summary>
    [SharedTheory]
    [InlineData("fx-llama-Q4_0")]
    [InlineData("fx-qwen2-Q4_0")]
    [InlineData("fx-qwen3-Q4_0")]
    public void Repacked_Q4_0_stays_within_the_golden_tolerance(string name)
    {
        var folder = Path.GetDirectoryName(TestPaths.Shared("fixtures", name + ".gguf"))!;
        var golden = GoldenCase.LoadFixture(folder, name);
        double Nmse(bool repack)
        {
            using var model = LoadedModel.Open(Path.Combine(folder, name + ".gguf"), new ModelOptions { Threads = 2, RepackWeights = repack });
            Models.FixtureGoldenTests.CheckAgainstGolden(model.Model, golden, Models.FixtureGoldenTests.Tolerance.Quantized);
            using var cache = model.Model.CreateCache(golden.Rows);
            var logits = new float[golden.Rows * golden.Vocab];
            model.Model.Forward(golden.Tokens, 0, cache, logits);
            return LogitCompare.Nmse(logits, golden.Logits);
        }
        double on = Nmse(true), off = Nmse(false);
        Console.WriteLine($"{name}: NMSE against the golden {on:E2} repacked, {off:E2} row kernels");
        on.Should().BeLessThanOrEqualTo(5e-4);
        if (System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported) on.Should().BeLessThanOrEqualTo(off * 1.0001 + 1e-15, "the repacked order is llama.cpp's");
    }

    [Fact]
    public void Reading_a_mapped_file_returns_its_bytes()
    {
        var bytes = new byte[3 << 20];
        new Random(4).NextBytes(bytes);
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(file, bytes);
            using var mapped = MappedRegion.OpenFile(file);
            using var memory = MappedRegion.FromBytes(bytes);
            foreach (var region in new[] { mapped, memory })
            {
                var dst = new byte[1 << 20];
                region.Read(12345, dst);
                dst.AsSpan().SequenceEqual(bytes.AsSpan(12345, dst.Length)).Should().BeTrue(region.Source);
                var act = () => region.Read(bytes.Length - 10, new byte[11]);
                act.Should().Throw<ArgumentOutOfRangeException>();
            }
        }
        finally { File.Delete(file); }
    }
}
