using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Models;

/// <summary>The same golden logits reached from Hugging Face Safetensors folders (rotate-half RoPE on the
/// un-permuted q/k rows) as from the GGUF files.</summary>
public class SafetensorsGoldenTests
{
    [SharedTheory]
    [InlineData("fx-llama-F32")]
    [InlineData("fx-qwen2-F32")]
    [InlineData("fx-qwen3-F32")]
    public void Hugging_Face_folder_matches_the_gguf_golden(string name)
    {
        var folder = TestPaths.Shared("fixtures", "hf", name + "-hf")!;
        using var model = LoadedModel.Open(folder);
        var golden = GoldenCase.LoadFixture(FixtureGoldenTests.FixtureFolder(name)!, name);
        FixtureGoldenTests.CheckAgainstGolden(model.Model, golden, FixtureGoldenTests.Tolerance.F32);
    }

    [SharedFact]
    public void Stories260K_derived_safetensors_matches_llama_cpp()
    {
        using var model = LoadedModel.Open(TestPaths.Shared("models", "stories260K-hf-derived")!);
        foreach (var golden in GoldenCase.LoadStories(TestPaths.Repo("Engine.Tests", "Golden")))
        {
            using var cache = model.Model.CreateCache(512);
            var logits = new float[golden.Rows * golden.Vocab];
            model.Model.Forward(golden.Tokens, 0, cache, logits);
            for (int i = 0; i < golden.Rows; i++)
                LogitCompare.MaxAbsDiff(logits.AsSpan(i * golden.Vocab, golden.Vocab), golden.Row(i)).Should().BeLessThanOrEqualTo(1e-3);
            StoriesGoldenTests.GreedyDecode(model.Model, golden.Tokens, golden.GreedyTokens.Length).Should().Equal(golden.GreedyTokens);
        }
    }
}
