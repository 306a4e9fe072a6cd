using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Models;

/// <summary>The shipped default model against llama.cpp's golden logits and greedy tokens (copied into
/// Engine.Tests/Golden so a fresh clone checks them without ../shared).</summary>
public class StoriesGoldenTests
{
    static readonly string ModelPath = TestPaths.Repo("models", "stories260K.gguf");
    static readonly string GoldenDir = TestPaths.Repo("Engine.Tests", "Golden");

    [Fact]
    public void Every_prompt_position_matches_llama_cpp_logits()
    {
        using var model = LoadedModel.Open(ModelPath);
        foreach (var golden in GoldenCase.LoadStories(GoldenDir))
        {
            using var cache = model.Model.CreateCache(512);
            var logits = new float[golden.Rows * golden.Vocab];
            model.Model.Forward(golden.Tokens, 0, cache, logits);
            for (int i = 0; i < golden.Rows; i++)
                LogitCompare.MaxAbsDiff(logits.AsSpan(i * golden.Vocab, golden.Vocab), golden.Row(i))
                    .Should().BeLessThanOrEqualTo(1e-3, $"row {i} of '{golden.Name}'");
        }
    }

    [Fact]
    public void Greedy_generation_is_token_identical_to_llama_cpp()
    {
        using var model = LoadedModel.Open(ModelPath);
        foreach (var golden in GoldenCase.LoadStories(GoldenDir))
        {
            var generated = GreedyDecode(model.Model, golden.Tokens, golden.GreedyTokens.Length);
            generated.Should().Equal(golden.GreedyTokens, $"greedy continuation of '{golden.Name}'");
        }
    }

    /// <summary>Prompt in one batch, then one token at a time: argmax of raw logits.</summary>
    internal static int[] GreedyDecode(Llama model, int[] prompt, int count)
    {
        using var cache = model.CreateCache(prompt.Length + count);
        var logits = new float[model.Config.VocabSize];
        model.Forward(prompt, 0, cache, logits);
        var result = new List<int>();
        int position = prompt.Length;
        for (int i = 0; i < count; i++)
        {
            int next = LogitCompare.Argmax(logits);
            result.Add(next);
            if (i + 1 < count) model.Forward([next], position++, cache, logits);
        }
        return result.ToArray();
    }
}
