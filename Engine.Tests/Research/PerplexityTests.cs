using System.Text.Json;
using Engine.Tests.Support;

namespace Engine.Tests.Research;

/// <summary>Perplexity and per-token log-probabilities against llama.cpp's: Engine.Tests/Golden/perplexity holds
/// llama-perplexity's numbers for story.txt at a context of 128 and the log-probabilities of a short prompt, made from
/// llama.cpp's logits by tools/perplexity/reference.py (see Golden/PROVENANCE.md; the tests never run llama.cpp).
/// The models ship with the repository (models/, Engine.Tests/Fixtures), so these run in a fresh clone.</summary>
public class PerplexityTests
{
    sealed record Reference(double Perplexity, double Uncertainty, int ScoredTokens, int Chunks, int Context, int TextTokens,
        double[] Running, string Prompt, int[] PromptTokens, double[] LogProbabilities, int[] MostLikely);

    static Reference Load(string name)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Golden(name + ".ctx128.json")));
        var r = json.RootElement;
        var p = r.GetProperty("prompt");
        return new Reference(r.GetProperty("perplexity").GetDouble(), r.GetProperty("uncertainty").GetDouble(),
            r.GetProperty("scored_tokens").GetInt32(), r.GetProperty("chunks").GetInt32(), r.GetProperty("ctx").GetInt32(),
            r.GetProperty("text_tokens").GetInt32(),
            [.. r.GetProperty("running_perplexity").EnumerateArray().Select(e => e.GetDouble())],
            p.GetProperty("text").GetString()!,
            [.. p.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32())],
            [.. p.GetProperty("log_probabilities").EnumerateArray().Select(e => e.GetDouble())],
            [.. p.GetProperty("most_likely").EnumerateArray().Select(e => e.GetInt32())]);
    }

    static string Golden(string file) => TestPaths.Repo("Engine.Tests", "Golden", "perplexity", file);

    /// <summary>The story as llama.cpp's -f reads it (one trailing newline dropped).</summary>
    static string Story() => File.ReadAllText(Golden("story.txt")).TrimEnd('\n');

    static string ModelPath(string name) => name == "stories260K"
        ? TestPaths.Repo("models", "stories260K.gguf")
        : TestPaths.Repo("Engine.Tests", "Fixtures", name + ".gguf");

    public static TheoryData<string> Models() => new("stories260K", "fx-llama-F32", "fx-qwen2-F32");

    [Theory]
    [MemberData(nameof(Models))]
    public async Task Perplexity_equals_llama_perplexity_within_1e_4_relative(string name)
    {
        var reference = Load(name);
        using var model = Model.Load(ModelPath(name));
        var reported = new List<PerplexityProgress>();
        var result = await model.PerplexityAsync(Story(), new PerplexityOptions { ContextLength = reference.Context, Progress = new Recorder(reported) });

        result.TextTokens.Should().Be(reference.TextTokens, "the text is tokenized as llama.cpp tokenizes it");
        result.Chunks.Should().Be(reference.Chunks);
        result.ScoredTokens.Should().Be(reference.ScoredTokens);
        result.Perplexity.Should().BeApproximately(reference.Perplexity, reference.Perplexity * 1e-4);
        result.Uncertainty.Should().BeApproximately(reference.Uncertainty, reference.Uncertainty * 1e-3);
        result.RunningPerplexity.Should().HaveCount(reference.Chunks);
        for (int c = 0; c < reference.Chunks; c++)
            result.RunningPerplexity[c].Should().BeApproximately(reference.Running[c], reference.Running[c] * 1e-4, $"after chunk {c + 1}");
        reported.Select(p => p.Chunk).Should().Equal(Enumerable.Range(1, reference.Chunks));
        reported.Select(p => p.Perplexity).Should().Equal(result.RunningPerplexity);
        reported.Should().OnlyContain(p => p.Chunks == reference.Chunks);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public async Task Log_probabilities_of_a_prompt_match_llama_cpp(string name)
    {
        var reference = Load(name);
        using var model = Model.Load(ModelPath(name));
        var scored = await model.ScoreAsync(reference.Prompt);

        scored.Tokens.Should().Equal(reference.PromptTokens);
        scored.Scores.Should().HaveCount(reference.PromptTokens.Length - 1);
        for (int i = 0; i < scored.Scores.Count; i++)
        {
            var s = scored.Scores[i];
            s.Position.Should().Be(i + 1);
            s.Token.Should().Be(reference.PromptTokens[i + 1]);
            // The F32 fixtures' logit tolerance is 1e-3; a log-probability is a logit less a log-sum-exp.
            s.LogProbability.Should().BeApproximately(reference.LogProbabilities[i], 2e-3, $"token {i + 1}");
            s.MostLikelyToken.Should().Be(reference.MostLikely[i], $"position {i + 1}");
            s.MostLikelyLogProbability.Should().BeGreaterThanOrEqualTo(s.LogProbability);
            (s.Rank == 0).Should().Be(s.Token == s.MostLikelyToken);
        }
        scored.TotalLogProbability.Should().BeApproximately(reference.LogProbabilities.Sum(), 2e-3 * reference.LogProbabilities.Length);
        scored.Perplexity.Should().BeApproximately(Math.Exp(-reference.LogProbabilities.Average()), Math.Exp(-reference.LogProbabilities.Average()) * 2e-3);
    }

    [Fact]
    public void A_score_is_the_log_softmax_of_the_token_with_its_rank_and_the_top_choice()
    {
        float[] logits = [1f, 3f, 2f, 3f, -1f];
        double logSum = Math.Log(Math.Exp(1) + Math.Exp(3) + Math.Exp(2) + Math.Exp(3) + Math.Exp(-1));
        var s = Engine.Research.TokenScorer.Measure(logits, position: 7, token: 2);
        s.Position.Should().Be(7);
        s.Token.Should().Be(2);
        s.LogProbability.Should().BeApproximately(2 - logSum, 1e-12);
        s.Rank.Should().Be(2, "two tokens have a larger logit");
        s.MostLikelyToken.Should().Be(1, "the first of the tied largest");
        s.MostLikelyLogProbability.Should().BeApproximately(3 - logSum, 1e-12);
        Engine.Research.TokenScorer.Measure(logits, 1, 3).Rank.Should().Be(0, "a token tied with the top is ranked first too");
        Engine.Research.TokenScorer.Measure(logits, 1, 4).Rank.Should().Be(4);

        // Logits far beyond float's exp range still give finite log-probabilities (the max is subtracted first).
        Engine.Research.TokenScorer.Measure([1000f, 0f], 1, 1).LogProbability.Should().BeApproximately(-1000, 1e-9);
        var nan = () => Engine.Research.TokenScorer.Measure([0f, float.NaN], 1, 0);
        nan.Should().Throw<NonFiniteLogitsException>().Which.TokenId.Should().Be(1);
    }

    [Fact]
    public async Task Long_sequences_are_fed_in_slices_without_changing_the_scores()
    {
        // 150 tokens are three slices of the model's 64-row batch; their first 99 scores must not depend on where the
        // slices fall, so they equal those of the first 100 tokens alone (fed as 64 + 35 rows).
        using var model = Model.Load(TestPaths.Repo("models", "stories260K.gguf"));
        var tokens = model.Tokenize(Story()).Take(150).ToArray();
        var whole = await model.ScoreAsync(tokens);
        var part = await model.ScoreAsync(tokens[..100]);
        whole.Scores.Should().HaveCount(149);
        for (int i = 0; i < part.Scores.Count; i++)
        {
            whole.Scores[i].LogProbability.Should().BeApproximately(part.Scores[i].LogProbability, 1e-4, $"token {i + 1}");
            whole.Scores[i].MostLikelyToken.Should().Be(part.Scores[i].MostLikelyToken);
        }
        whole.Scores.Select(s => s.Position).Should().Equal(Enumerable.Range(1, 149));
        whole.Scores.Select(s => s.Token).Should().Equal(tokens[1..]);
    }

    [Fact]
    public async Task Bad_requests_are_refused_with_what_is_wrong()
    {
        using var model = Model.Load(TestPaths.Repo("models", "stories260K.gguf"), new ModelLoadOptions { ContextLength = 256 });
        var story = Story();

        var shortText = () => model.PerplexityAsync("Once upon a time", new PerplexityOptions { ContextLength = 128 });
        (await shortText.Should().ThrowAsync<ArgumentException>()).Which.Message.Should().Contain("needs at least 256");
        var wide = () => model.PerplexityAsync(story, new PerplexityOptions { ContextLength = 512 });
        (await wide.Should().ThrowAsync<ArgumentOutOfRangeException>()).Which.Message.Should().Contain("more than the model's context of 256");
        var tiny = () => model.PerplexityAsync(story, new PerplexityOptions { ContextLength = 2 });
        await tiny.Should().ThrowAsync<ArgumentOutOfRangeException>();
        var none = () => model.PerplexityAsync(story, new PerplexityOptions { ContextLength = 128, MaxChunks = 0 });
        await none.Should().ThrowAsync<ArgumentOutOfRangeException>();
        var outside = () => model.PerplexityAsync(Enumerable.Repeat(600, 300).ToArray(), new PerplexityOptions { ContextLength = 128 });
        (await outside.Should().ThrowAsync<ArgumentOutOfRangeException>()).Which.Message.Should().Contain("outside the vocabulary of 512");

        var one = () => model.ScoreAsync([1]);
        (await one.Should().ThrowAsync<ArgumentException>()).Which.Message.Should().Contain("at least 2 tokens");
        var longer = () => model.ScoreAsync(Enumerable.Repeat(5, 257).ToArray());
        (await longer.Should().ThrowAsync<ArgumentException>()).Which.Message.Should().Contain("more than the context of 256");
        var bad = () => model.ScoreAsync([1, -3]);
        await bad.Should().ThrowAsync<ArgumentOutOfRangeException>();
    }

    [Fact]
    public async Task Chunks_can_be_limited_and_a_cancelled_run_leaves_the_model_usable()
    {
        var reference = Load("stories260K");
        using var model = Model.Load(TestPaths.Repo("models", "stories260K.gguf"));
        var two = await model.PerplexityAsync(Story(), new PerplexityOptions { ContextLength = 128, MaxChunks = 2 });
        two.Chunks.Should().Be(2);
        two.ScoredTokens.Should().Be(2 * 63);
        two.Perplexity.Should().BeApproximately(reference.Running[1], reference.Running[1] * 1e-4);

        using var cancel = new CancellationTokenSource();
        var progress = new Recorder([], () => cancel.Cancel());
        var cancelled = () => model.PerplexityAsync(Story(), new PerplexityOptions { ContextLength = 128, Progress = progress }, cancel.Token);
        await cancelled.Should().ThrowAsync<OperationCanceledException>();
        var again = await model.PerplexityAsync(Story(), new PerplexityOptions { ContextLength = 128 });
        again.Perplexity.Should().BeApproximately(reference.Perplexity, reference.Perplexity * 1e-4);
        using var session = model.CreateSession();
        await foreach (var _ in session.GenerateAsync("Once", new GenerateOptions { MaxTokens = 4, Temperature = 0 })) { }
    }

    sealed class Recorder(List<PerplexityProgress> list, Action? then = null) : IProgress<PerplexityProgress>
    {
        public void Report(PerplexityProgress value)
        {
            list.Add(value);
            then?.Invoke();
        }
    }
}
