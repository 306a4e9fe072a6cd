using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Models;

/// <summary>Every dense fixture against llama.cpp's golden logits and greedy tokens, with the tolerances of
/// ../shared/fixtures/README.md. Fixtures are read from Engine.Tests/Fixtures (copied into the repo) or,
/// for the ones not copied, from ../shared/fixtures.</summary>
public class FixtureGoldenTests
{
    public static TheoryData<string> DenseFixtures => new()
    {
        "fx-llama-F32", "fx-llama-F16", "fx-llama-BF16", "fx-llama-Q8_0", "fx-llama-Q4_0",
        "fx-llama-tied-F32", "fx-llama-tied-F16", "fx-llama-tied-BF16", "fx-llama-tied-Q8_0", "fx-llama-tied-Q4_0",
        "fx-qwen2-F32", "fx-qwen2-F16", "fx-qwen2-BF16", "fx-qwen2-Q8_0", "fx-qwen2-Q4_0",
        "fx-qwen3-F32", "fx-qwen3-F16", "fx-qwen3-BF16", "fx-qwen3-Q8_0", "fx-qwen3-Q4_0",
    };

    [Theory]
    [MemberData(nameof(DenseFixtures))]
    public void Logits_and_greedy_tokens_match_llama_cpp(string name)
    {
        // The dense fixtures are copied into the repository, so a fresh clone always runs these.
        var folder = FixtureFolder(name) ?? throw new FileNotFoundException($"{name}.gguf is in neither Engine.Tests/Fixtures nor ../shared/fixtures");
        using var model = LoadedModel.Open(Path.Combine(folder, name + ".gguf"));
        var golden = GoldenCase.LoadFixture(folder, name);
        CheckAgainstGolden(model.Model, golden, ToleranceFor(name));
    }

    public static string? FixtureFolder(string name)
    {
        var inRepo = TestPaths.Repo("Engine.Tests", "Fixtures");
        if (File.Exists(Path.Combine(inRepo, name + ".gguf"))) return inRepo;
        var shared = TestPaths.Shared("fixtures", name + ".gguf");
        return shared is null ? null : Path.GetDirectoryName(shared);
    }

    public enum Tolerance { F32, Half, Quantized }

    public static Tolerance ToleranceFor(string name) =>
        name.EndsWith("F32") ? Tolerance.F32 : name.EndsWith("F16") || name.EndsWith("BF16") ? Tolerance.Half : Tolerance.Quantized;

    internal static void CheckAgainstGolden(Llama model, GoldenCase golden, Tolerance tolerance)
    {
        using var cache = model.CreateCache(golden.Rows + golden.GreedyTokens.Length);
        var logits = new float[golden.Rows * golden.Vocab];
        model.Forward(golden.Tokens, 0, cache, logits);
        int sameTop = 0;
        double worstAbs = 0, nmse = LogitCompare.Nmse(logits, golden.Logits);
        for (int i = 0; i < golden.Rows; i++)
        {
            var row = logits.AsSpan(i * golden.Vocab, golden.Vocab);
            worstAbs = Math.Max(worstAbs, LogitCompare.MaxAbsDiff(row, golden.Row(i)));
            if (LogitCompare.Argmax(row) == LogitCompare.Argmax(golden.Row(i))) sameTop++;
        }
        var greedy = StoriesGoldenTests.GreedyDecode(model, golden.Tokens, golden.GreedyTokens.Length);
        string report = $"{golden.Name}: max|diff| {worstAbs:E2}, NMSE {nmse:E2}, top token equal at {sameTop}/{golden.Rows}, greedy {string.Join(' ', greedy)}";
        Console.WriteLine(report);
        switch (tolerance)
        {
            case Tolerance.F32:
                worstAbs.Should().BeLessThanOrEqualTo(1e-3, report);
                sameTop.Should().Be(golden.Rows, report);
                greedy.Should().Equal(golden.GreedyTokens, report);
                break;
            case Tolerance.Half:
                worstAbs.Should().BeLessThanOrEqualTo(2e-2, report);
                sameTop.Should().Be(golden.Rows, report);
                greedy.Take(8).Should().Equal(golden.GreedyTokens.Take(8), report);
                break;
            default:
                nmse.Should().BeLessThanOrEqualTo(5e-4, report);
                sameTop.Should().BeGreaterThanOrEqualTo(21, report);
                greedy[0].Should().Be(golden.GreedyTokens[0], report);
                break;
        }
    }
}

/// <summary>The other quant types of ../shared/fixtures (issue 4's scope), checked when that folder is present.</summary>
public class SharedQuantFixtureTests
{
    [SharedTheory]
    [InlineData("fx-llama-Q4_1")] [InlineData("fx-llama-Q5_0")] [InlineData("fx-llama-Q5_1")]
    [InlineData("fx-llama-Q2_K")] [InlineData("fx-llama-Q3_K")]
    [InlineData("fx-llama-Q4_K")] [InlineData("fx-llama-Q5_K")] [InlineData("fx-llama-Q6_K")]
    [InlineData("fx-llama-Q4_K_M")] [InlineData("fx-llama-Q5_K_M")] [InlineData("fx-llama-tied-Q4_K_M")]
    [InlineData("fx-qwen2-Q4_K_M")] [InlineData("fx-qwen3-Q4_K_M")]
    [InlineData("fx-llama-IQ4_NL")] [InlineData("fx-llama-IQ4_XS")]
    public void Quantized_fixture_matches_llama_cpp(string name)
    {
        var folder = Path.GetDirectoryName(TestPaths.Shared("fixtures", name + ".gguf"))!;
        using var model = Engine.Models.LoadedModel.Open(Path.Combine(folder, name + ".gguf"));
        FixtureGoldenTests.CheckAgainstGolden(model.Model, GoldenCase.LoadFixture(folder, name), FixtureGoldenTests.Tolerance.Quantized);
    }

}
