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
        var cache = model.Model.CreateCache(16);
        var logits = new float[tokens.Length * model.Config.VocabSize];
        model.Model.Forward(tokens, 0, cache, logits); // the prompt tiles (4 tokens) and single tokens
        var next = new float[model.Config.VocabSize];
        model.Model.Forward([5], tokens.Length, cache, next); // the decode kernel
        return [.. logits, .. next];
    }

    /// <summary>Q4_K_M keeps output, attn_v and half the ffn_down in Q6_K, so both repacked layouts run; the Q6_K
    /// fixture has nothing else.</summary>
    [SharedTheory]
    [InlineData("fx-llama-Q4_K_M.gguf")]
    [InlineData("fx-llama-Q6_K.gguf")]
    public void Repacked_model_matches_the_unrepacked_one(string fixture)
    {
        var path = TestPaths.Shared("fixtures", fixture)!;
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
