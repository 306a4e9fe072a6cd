using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Models;

/// <summary>The qwen3moe fixtures (8 experts, 2 per token) against llama.cpp's golden logits and greedy tokens,
/// with the tolerances of ../shared/fixtures/README.md. fx-qwen3moe-Q8_0 is copied into Engine.Tests/Fixtures
/// so a fresh clone tests MoE; the F16, Q4_K_M and Hugging Face copies are read from ../shared.</summary>
public class MoeFixtureTests
{
    [Fact]
    public void Qwen3moe_Q8_0_matches_llama_cpp()
    {
        const string name = "fx-qwen3moe-Q8_0";
        var folder = FixtureGoldenTests.FixtureFolder(name) ?? throw new FileNotFoundException($"{name}.gguf is not in Engine.Tests/Fixtures");
        using var model = LoadedModel.Open(Path.Combine(folder, name + ".gguf"));
        FixtureGoldenTests.CheckAgainstGolden(model.Model, GoldenCase.LoadFixture(folder, name), FixtureGoldenTests.Tolerance.Quantized);
    }

    [SharedTheory]
    [InlineData("fx-qwen3moe-F16")]
    [InlineData("fx-qwen3moe-Q4_K_M")]
    public void Qwen3moe_shared_fixture_matches_llama_cpp(string name)
    {
        var folder = Path.GetDirectoryName(TestPaths.Shared("fixtures", name + ".gguf"))!;
        using var model = LoadedModel.Open(Path.Combine(folder, name + ".gguf"));
        FixtureGoldenTests.CheckAgainstGolden(model.Model, GoldenCase.LoadFixture(folder, name), FixtureGoldenTests.ToleranceFor(name));
    }

    /// <summary>Per-expert 2-D tensors (mlp.experts.E.*_proj, router mlp.gate) reach the same logits as the
    /// stacked GGUF tensors.</summary>
    [SharedFact]
    public void Qwen3moe_Hugging_Face_folder_matches_the_gguf_golden()
    {
        const string name = "fx-qwen3moe-F16";
        using var model = LoadedModel.Open(TestPaths.Shared("fixtures", "hf", name + "-hf")!);
        model.Config.ExpertCount.Should().Be(8);
        var golden = GoldenCase.LoadFixture(Path.GetDirectoryName(TestPaths.Shared("fixtures", name + ".gguf"))!, name);
        FixtureGoldenTests.CheckAgainstGolden(model.Model, golden, FixtureGoldenTests.Tolerance.Half);
    }
}
