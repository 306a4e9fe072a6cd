using Engine.Convert;
using Engine.Convert.Gguf;
using Engine.Convert.Model;
using Engine.Convert.Presets;
using Engine.Convert.Quant;
using Engine.Convert.Safetensors;
using Engine.Formats.Gguf;
using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Convert;

/// <summary>engine-convert's files open in the engine and run a forward pass, in every output type. The test shapes
/// take the tokenizer of an in-repo fixture (512 tokens), and a small random pool keeps the quantization quick.</summary>
public sealed class SynthesizedModelTests : IDisposable
{
    readonly string _folder = Path.Combine(Path.GetTempPath(), "engine-convert-tests-" + Guid.NewGuid().ToString("N")[..8]);
    static string FixtureVocab => TestPaths.Repo("Engine.Tests", "Fixtures", "fx-qwen3-F32.gguf");

    public void Dispose()
    {
        if (Directory.Exists(_folder)) Directory.Delete(_folder, recursive: true);
    }

    static SynthOptions Options(string preset, string type, string output, ulong seed = 0) =>
        new(PresetCatalog.Find(preset)!, OutputType.Find(type)!, output) { VocabPath = FixtureVocab, PoolLength = 1 << 16, Seed = seed };

    public static TheoryData<string, string> PresetsAndTypes()
    {
        var data = new TheoryData<string, string>();
        foreach (var preset in new[] { "test-llama", "test-qwen2", "test-qwen3" })
            foreach (var type in new[] { "F16", "BF16", "Q8_0", "Q4_0", "Q4_K_M" })
                data.Add(preset, type);
        return data;
    }

    [Theory]
    [MemberData(nameof(PresetsAndTypes))]
    public void Synthesized_gguf_loads_and_runs_a_token(string preset, string type)
    {
        var path = Path.Combine(_folder, $"{preset}-{type}.gguf");
        var options = Options(preset, type, path);
        var result = GgufSynthesizer.Write(options, log: null);

        File.Exists(path + ".part").Should().BeFalse();
        new FileInfo(path).Length.Should().Be(result.Bytes);
        using (var file = GgufFile.Open(path))
        {
            var planned = ModelLayout.Plan(options.Preset, options.Type, 512);
            file.Tensors.Select(t => (t.Name, t.Type, string.Join(",", t.Shape)))
                .Should().Equal(planned.Select(t => (t.Spec.Name, t.Type, string.Join(",", t.Spec.Shape))));
            file.Metadata[GgufKeys.FileType].Value.Should().Be(options.Type.FileTypeId);
        }

        using var model = LoadedModel.Open(path);
        model.Config.VocabSize.Should().Be(512);
        var logits = RunOneToken(model);
        logits.Should().OnlyContain(x => float.IsFinite(x));
        logits.Distinct().Count().Should().BeGreaterThan(100, "random weights give varied logits");
    }

    static float[] RunOneToken(LoadedModel model)
    {
        var logits = new float[model.Config.VocabSize];
        using var cache = model.Model.CreateCache(8);
        model.Model.Forward([1], 0, cache, logits);
        return logits;
    }

    [Fact]
    public void Same_seed_gives_the_same_bytes_and_another_seed_other_weights()
    {
        string a = Path.Combine(_folder, "a.gguf"), b = Path.Combine(_folder, "b.gguf"), c = Path.Combine(_folder, "c.gguf");
        GgufSynthesizer.Write(Options("test-qwen3", "Q4_K_M", a), null);
        GgufSynthesizer.Write(Options("test-qwen3", "Q4_K_M", b), null);
        GgufSynthesizer.Write(Options("test-qwen3", "Q4_K_M", c, seed: 7), null);
        File.ReadAllBytes(a).Should().Equal(File.ReadAllBytes(b));
        File.ReadAllBytes(a).SequenceEqual(File.ReadAllBytes(c)).Should().BeFalse();
    }

    [Fact]
    public void An_existing_output_is_kept_unless_forced()
    {
        var path = Path.Combine(_folder, "x.gguf");
        Directory.CreateDirectory(_folder);
        File.WriteAllText(path, "keep me");
        var act = () => GgufSynthesizer.Write(Options("test-qwen3", "F16", path), null);
        act.Should().Throw<ConvertException>().WithMessage("*exists*--force*");
        File.ReadAllText(path).Should().Be("keep me");
        GgufSynthesizer.Write(Options("test-qwen3", "F16", path) with { Overwrite = true }, null);
        GgufFile.Open(path).Dispose();
    }

    [Fact]
    public void A_missing_vocab_file_fails_clearly()
    {
        var options = Options("test-qwen3", "F16", Path.Combine(_folder, "x.gguf")) with { VocabPath = Path.Combine(_folder, "none.gguf") };
        var act = () => GgufSynthesizer.Write(options, null);
        act.Should().Throw<ConvertException>().WithMessage("vocab file not found*none.gguf");
        File.Exists(Path.Combine(_folder, "x.gguf.part")).Should().BeFalse();
    }

    [Fact]
    public void Safetensors_folder_holds_the_same_model_as_the_gguf()
    {
        // Qwen RoPE is NeoX-style in both layouts, so the same weights must give the same logits.
        string gguf = Path.Combine(_folder, "m.gguf"), hf = Path.Combine(_folder, "hf");
        GgufSynthesizer.Write(Options("test-qwen3", "F16", gguf), null);
        SafetensorsSynthesizer.Write(Options("test-qwen3", "F16", hf), null);
        File.Exists(Path.Combine(hf, "config.json")).Should().BeTrue();

        using var fromGguf = LoadedModel.Open(gguf);
        using var fromHf = LoadedModel.Open(hf);
        fromHf.Config.VocabSize.Should().Be(512);
        var expected = RunOneToken(fromGguf);
        var actual = RunOneToken(fromHf);
        LogitCompare.MaxAbsDiff(actual, expected).Should().BeLessThan(1e-3);
    }

    [Fact]
    public void Llama_safetensors_folder_with_rope_scaling_loads()
    {
        var hf = Path.Combine(_folder, "llama-hf");
        SafetensorsSynthesizer.Write(Options("test-llama", "BF16", hf), null);
        using var model = LoadedModel.Open(hf);
        model.Config.RopeScaling.Type.Should().Be(RopeScalingType.Llama3);
        RunOneToken(model).Should().OnlyContain(x => float.IsFinite(x));
    }
}

/// <summary>MoE files (the engine does not run them yet; llama.cpp reads them, see docs/convert.md).</summary>
public sealed class SynthesizedMoeTests : IDisposable
{
    readonly string _folder = Path.Combine(Path.GetTempPath(), "engine-convert-moe-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        if (Directory.Exists(_folder)) Directory.Delete(_folder, recursive: true);
    }

    static SynthOptions Options(string type, string output) =>
        new(PresetCatalog.Find("test-qwen3moe")!, OutputType.Find(type)!, output)
        { VocabPath = TestPaths.Repo("Engine.Tests", "Fixtures", "fx-qwen3-F32.gguf"), PoolLength = 1 << 16 };

    [Fact]
    public void Gguf_holds_the_qwen3moe_keys_and_stacked_experts()
    {
        var path = Path.Combine(_folder, "moe.gguf");
        GgufSynthesizer.Write(Options("Q4_K_M", path), null);
        using var file = GgufFile.Open(path);
        file.Metadata["qwen3moe.expert_count"].Value.Should().Be(8u);
        file.Metadata["qwen3moe.expert_used_count"].Value.Should().Be(2u);
        file.Metadata["qwen3moe.expert_feed_forward_length"].Value.Should().Be(256u);
        file.Tensors.Single(t => t.Name == "blk.0.ffn_up_exps.weight").Shape.Should().Equal(256, 256, 8);
    }

    [Fact]
    public void Safetensors_splits_experts_into_one_matrix_each()
    {
        var folder = Path.Combine(_folder, "moe-hf");
        SafetensorsSynthesizer.Write(Options("BF16", folder), null);
        using var model = Engine.Formats.Safetensors.SafetensorsModel.Open(folder);
        model.Contains("model.layers.1.mlp.experts.7.down_proj.weight").Should().BeTrue();
        model.Contains("model.layers.1.mlp.gate.weight").Should().BeTrue();
        model.Contains("lm_head.weight").Should().BeTrue();
    }
}
