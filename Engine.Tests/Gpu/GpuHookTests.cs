using Engine.Backends;
using Engine.Gpu;
using Engine.Models;
using Engine.Tests.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Gpu;

/// <summary>The research hooks on the GPU backend (the ILGPU CPU simulator here, a real device under
/// ENGINE_GPU_TEST_DEVICE): the same values as on the CPU backend, edits flow back into the device's pass, and the
/// explicit attention path reads the device's KV pool (F32 and F16) through ReadKv.</summary>
[Collection(GpuCollection.Name)]
public class GpuHookTests(GpuTestDevice device)
{
    static readonly int[] Tokens = [1, 15, 300, 7, 42, 99];

    [Theory]
    [InlineData("F32")]
    [InlineData("F16")]
    public void Hooks_see_and_edit_the_same_values_as_on_the_cpu(string kvTypeName)
    {
        var kvType = Enum.Parse<KvElementType>(kvTypeName);
        var folder = FixtureGoldenTests.FixtureFolder("fx-llama-F32") ?? throw new FileNotFoundException("fx-llama-F32");
        var path = Path.Combine(folder, "fx-llama-F32.gguf");
        using var cpu = LoadedModel.Open(path);
        using var gpu = LoadedModel.Open(path, new ModelOptions { BackendFactory = (_, _) => new GpuBackend(device.ModelDevice, ownsDevice: false) });

        var onCpu = Run(cpu.Model, kvType, edit: false);
        var onGpu = Run(gpu.Model, kvType, edit: false);
        foreach (var name in onCpu.Values.Keys)
            MaxDifference(onCpu.Values[name], onGpu.Values[name]).Should().BeLessThan(kvType == KvElementType.F32 ? 1e-4f : 2e-2f, name);

        // A no-op hook leaves the device's logits bit-identical; an edit of l_out.0 changes them.
        var plain = Logits(gpu.Model, kvType, null);
        Logits(gpu.Model, kvType, "l_out.0").Should().Equal(plain);
        var edited = Run(gpu.Model, kvType, edit: true);
        MaxDifference(edited.Logits, plain).Should().BeGreaterThan(1e-3f);
        MaxDifference(edited.Logits, Run(cpu.Model, kvType, edit: true).Logits).Should().BeLessThan(kvType == KvElementType.F32 ? 1e-3f : 5e-2f);
    }

    sealed record Recorded(Dictionary<string, float[]> Values, float[] Logits);

    static Recorded Run(Llama model, KvElementType kvType, bool edit)
    {
        var values = new Dictionary<string, float[]>();
        using var hook = model.Hooks.Add("kq_soft_max.1,kqv_out.1,l_out", (context, span) =>
        {
            if (edit && context.Name == "l_out" && context.Layer == 0) span.Fill(0.5f);
            values[$"{context.Name}.{context.Layer}"] = span.ToArray();
        });
        using var cache = model.CreateCache(16, kvType);
        var logits = new float[Tokens.Length * model.Config.VocabSize];
        model.Forward(Tokens, 0, cache, logits);
        return new Recorded(values, logits);
    }

    static float[] Logits(Llama model, KvElementType kvType, string? noOpPoints)
    {
        using var hook = noOpPoints is null ? null : model.Hooks.Add(noOpPoints, (_, _) => { });
        using var cache = model.CreateCache(16, kvType);
        var logits = new float[Tokens.Length * model.Config.VocabSize];
        model.Forward(Tokens, 0, cache, logits);
        return logits;
    }

    static float MaxDifference(float[] a, float[] b)
    {
        a.Length.Should().Be(b.Length);
        float max = 0;
        for (int i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }
}
