using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Models;

/// <summary>The qwen3moe fixtures (8 experts, 2 per token) against llama.cpp's golden logits and greedy tokens,
/// with the tolerances of ../shared/fixtures/README.md. fx-qwen3moe-Q8_0 is copied into Engine.Tests/Fixtures
/// so a fresh clone tests MoE; the F16, Q4_K_M and Hugging Face copies are read from ../shared.
/// Also the qwen2moe and llama (Mixtral-style) MoE fixtures, which live only in Engine.Tests/Fixtures.</summary>
public class MoeFixtureTests
{
    /// <summary>fx-qwen2moe (4 experts, 2 per token, plus a shared expert behind a sigmoid gate) and fx-llamamoe
    /// (Mixtral layout: llama with 4 experts, 2 per token) were made for this project with ../oracle, as the
    /// shared fixtures are (Engine.Tests/Fixtures/PROVENANCE.md).</summary>
    [Theory]
    [InlineData("fx-qwen3moe-Q8_0")]
    [InlineData("fx-qwen2moe-Q8_0")]
    [InlineData("fx-llamamoe-Q8_0")]
    public void In_repo_moe_fixture_matches_llama_cpp(string name)
    {
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
