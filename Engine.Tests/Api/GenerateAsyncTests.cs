using System.Text.Json;
using Engine.Tests.Support;

namespace Engine.Tests.Api;

/// <summary>The public API's streaming generation over the shipped stories260K model: the same tokens as llama.cpp's
/// greedy run and as `engine run`, cancellation within one token, and a session that stays usable.</summary>
public class GenerateAsyncTests
{
    static readonly string ModelPath = TestPaths.Repo("models", "stories260K.gguf");
    static readonly string GoldenDir = TestPaths.Repo("Engine.Tests", "Golden");

    static async Task<List<GeneratedToken>> Collect(IAsyncEnumerable<GeneratedToken> stream)
    {
        var list = new List<GeneratedToken>();
        await foreach (var token in stream) list.Add(token);
        return list;
    }

    [Fact]
    public async Task Greedy_GenerateAsync_yields_llama_cpp_greedy_tokens()
    {
        using var model = Model.Load(ModelPath);
        foreach (var golden in GoldenCase.LoadStories(GoldenDir))
        {
            using var session = model.CreateSession(512);
            var tokens = await Collect(session.GenerateAsync(golden.Tokens, GenerateOptions.Greedy with
            {
                MaxTokens = golden.GreedyTokens.Length, IgnoreEndOfGeneration = true,
            }));
            tokens.Select(t => t.Id).Should().Equal(golden.GreedyTokens, $"greedy continuation of '{golden.Name}'");
            tokens[^1].FinishReason.Should().Be(FinishReason.MaxTokens);
            tokens[^1].Timings!.GeneratedTokens.Should().Be(golden.GreedyTokens.Length);
            tokens[..^1].Should().OnlyContain(t => t.FinishReason == null && t.Timings == null);
        }
    }

    [Fact]
    public async Task GenerateAsync_text_is_exactly_what_engine_run_prints()
    {
        var cli = CliRunner.Run("run", "Once upon a time", "-n", "48", "--temperature", "0", "--json");
        cli.ExitCode.Should().Be(0, cli.Stderr);
        using var json = JsonDocument.Parse(cli.Stdout);
        var cliTokens = json.RootElement.GetProperty("generated_tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var cliText = json.RootElement.GetProperty("text").GetString();

        using var model = Model.Load(ModelPath);
        using var session = model.CreateSession(512);
        var tokens = await Collect(session.GenerateAsync("Once upon a time", GenerateOptions.Greedy with { MaxTokens = 48 }));
        tokens.Where(t => !t.IsEndOfGeneration).Select(t => t.Id).Should().Equal(cliTokens);
        string.Concat(tokens.Select(t => t.Text)).Should().Be(cliText);
        cliTokens.Should().NotBeEmpty();
    }

    [Fact]
    public async Task Cancellation_stops_within_one_token_and_leaves_the_session_usable()
    {
        using var model = Model.Load(ModelPath);
        using var session = model.CreateSession(512);
        using var cancel = new CancellationTokenSource();
        var seen = new List<int>();
        var act = async () =>
        {
            await foreach (var token in session.GenerateAsync("Once upon a time", GenerateOptions.Greedy with { MaxTokens = 200 }, cancel.Token))
            {
                seen.Add(token.Id);
                if (seen.Count == 5) cancel.Cancel();
            }
        };
        await act.Should().ThrowAsync<OperationCanceledException>();
        seen.Should().HaveCount(5, "the stream checks the token before every decode step");
        int held = session.Tokens.Count;
        held.Should().Be(model.Tokenize("Once upon a time", parseSpecialTokens: true).Count + 4, "the prompt and the four tokens fed before the cancel");

        // Usable: an empty prompt continues where the stream stopped (the fifth token, shown but not yet read, is fed
        // first), exactly as the uncancelled stream would have gone on; and a reset session starts over.
        var more = await Collect(session.GenerateAsync("", GenerateOptions.Greedy with { MaxTokens = 3 }));
        using (var whole = model.CreateSession(512))
        {
            var reference8 = await Collect(whole.GenerateAsync("Once upon a time", GenerateOptions.Greedy with { MaxTokens = 8 }));
            seen.Concat(more.Select(t => t.Id)).Should().Equal(reference8.Select(t => t.Id));
        }
        session.Reset();
        var again = await Collect(session.GenerateAsync("Once upon a time", GenerateOptions.Greedy with { MaxTokens = 8 }));
        using var fresh = model.CreateSession(512);
        var reference = await Collect(fresh.GenerateAsync("Once upon a time", GenerateOptions.Greedy with { MaxTokens = 8 }));
        again.Select(t => t.Id).Should().Equal(reference.Select(t => t.Id));
        again.Select(t => t.Id).Take(5).Should().Equal(seen);
    }

    [Fact]
    public async Task From_a_pool_thread_without_a_context_the_tokens_and_cancellation_are_the_same()
    {
        // xunit runs tests under a synchronization context; Task.Run takes the test to a pool thread with none. The
        // scheduler's thread computes either way: the stream's continuations run wherever the caller's await resumes.
        using var model = Model.Load(ModelPath);
        var golden = GoldenCase.LoadStories(GoldenDir)[0];
        var tokens = await Task.Run(async () =>
        {
            SynchronizationContext.Current.Should().BeNull();
            using var session = model.CreateSession(512);
            return await Collect(session.GenerateAsync(golden.Tokens, GenerateOptions.Greedy with { MaxTokens = golden.GreedyTokens.Length, IgnoreEndOfGeneration = true }));
        });
        tokens.Select(t => t.Id).Should().Equal(golden.GreedyTokens);

        using var cancelled = model.CreateSession(512);
        int seen = await Task.Run(async () =>
        {
            using var cancel = new CancellationTokenSource();
            int count = 0;
            try
            {
                await foreach (var _ in cancelled.GenerateAsync(golden.Tokens, GenerateOptions.Greedy with { MaxTokens = 50 }, cancel.Token))
                    if (++count == 3) cancel.Cancel();
            }
            catch (OperationCanceledException) { }
            return count;
        });
        seen.Should().Be(3);
        cancelled.Tokens.Should().HaveCount(golden.Tokens.Length + 2);
    }

    [Fact]
    public async Task A_continuation_reads_the_token_the_last_generation_ended_on()
    {
        using var model = Model.Load(ModelPath);
        var golden = GoldenCase.LoadStories(GoldenDir)[1];
        using var session = model.CreateSession(512);
        var options = GenerateOptions.Greedy with { MaxTokens = 10, IgnoreEndOfGeneration = true };
        var first = await Collect(session.GenerateAsync(golden.Tokens, options));
        session.Tokens.Should().HaveCount(golden.Tokens.Length + 9, "the tenth token is shown but not read yet");
        var second = await Collect(session.GenerateAsync(Array.Empty<int>(), options));
        var third = await Collect(session.GenerateAsync(Array.Empty<int>(), options));
        first.Concat(second).Concat(third).Select(t => t.Id).Should().Equal(golden.GreedyTokens.Take(30),
            "three streams of ten continue one another exactly as llama.cpp's single run of thirty");
        second[0].Timings.Should().BeNull();
        second[^1].Timings!.CachedTokens.Should().Be(golden.Tokens.Length + 9);
        second[^1].Timings!.PromptTokens.Should().Be(1, "only the pending token was fed");
    }

    [Fact]
    public async Task Sessions_of_one_model_take_turns_and_each_gets_its_own_result()
    {
        using var model = Model.Load(ModelPath);
        var golden = GoldenCase.LoadStories(GoldenDir);
        var runs = golden.Select(g => Task.Run(async () =>
        {
            using var session = model.CreateSession(512);
            return await Collect(session.GenerateAsync(g.Tokens, GenerateOptions.Greedy with { MaxTokens = g.GreedyTokens.Length, IgnoreEndOfGeneration = true }));
        })).ToList();
        var embedding = model.EmbedAsync("Once upon a time");
        var results = await Task.WhenAll(runs);
        for (int i = 0; i < golden.Count; i++)
            results[i].Select(t => t.Id).Should().Equal(golden[i].GreedyTokens, $"'{golden[i].Name}' while {golden.Count - 1} others and an embedding ran");
        (await embedding).Should().HaveCount(model.Info.EmbeddingLength);
    }

    [Fact]
    public async Task An_observer_that_calls_the_model_again_is_refused_instead_of_corrupting_the_pass()
    {
        using var model = Model.Load(ModelPath);
        using var session = model.CreateSession(64);
        Exception? inner = null;
        model.Observer = (name, layer, rows, width, values) =>
        {
            if (name != "l_out" || layer != 0 || inner is not null) return;
            try
            {
                using var other = model.CreateSession(8);
                other.GenerateAsync("Hi").GetAsyncEnumerator().MoveNextAsync().AsTask().GetAwaiter().GetResult();
            }
            catch (Exception e) { inner = e; }
        };
        await Collect(session.GenerateAsync("Once", GenerateOptions.Greedy with { MaxTokens = 1 }));
        inner.Should().BeOfType<InvalidOperationException>().Which.Message.Should().Contain("inside a forward pass");
    }

    [Fact]
    public async Task Log_probabilities_and_alternatives_describe_the_model_distribution()
    {
        using var model = Model.Load(ModelPath);
        using var session = model.CreateSession(256);
        var tokens = await Collect(session.GenerateAsync("Once upon a time", GenerateOptions.Greedy with { MaxTokens = 6, TopLogProbabilities = 5 }));
        foreach (var token in tokens)
        {
            token.TopAlternatives.Should().HaveCount(5);
            token.TopAlternatives.Select(a => a.LogProbability).Should().BeInDescendingOrder();
            token.TopAlternatives[0].Id.Should().Be(token.Id, "greedy takes the most likely token");
            token.LogProbability.Should().BeApproximately(token.TopAlternatives[0].LogProbability, 1e-6f);
            token.LogProbability.Should().BeLessThanOrEqualTo(0);
            token.TopAlternatives.Sum(a => Math.Exp(a.LogProbability)).Should().BeLessThanOrEqualTo(1.0 + 1e-5);
            token.TopAlternatives[0].Text.Should().Be(model.TokenText(token.Id));
        }
    }

    [Fact]
    public async Task Stop_sequences_end_the_text_before_the_stop()
    {
        using var model = Model.Load(ModelPath);
        using var session = model.CreateSession(512);
        var full = string.Concat((await Collect(session.GenerateAsync("Once upon a time", GenerateOptions.Greedy with { MaxTokens = 40 }))).Select(t => t.Text));
        var stop = full.Split(' ', StringSplitOptions.RemoveEmptyEntries)[5];
        session.Reset();
        var stopped = await Collect(session.GenerateAsync("Once upon a time", GenerateOptions.Greedy with { MaxTokens = 40, StopSequences = [stop] }));
        stopped[^1].FinishReason.Should().Be(FinishReason.StopSequence);
        string.Concat(stopped.Select(t => t.Text)).Should().Be(full[..full.IndexOf(stop, StringComparison.Ordinal)]);
    }

    [Fact]
    public async Task A_full_context_ends_the_generation_with_its_reason()
    {
        using var model = Model.Load(ModelPath);
        using var session = model.CreateSession(12);
        var prompt = model.Tokenize("Once upon a time", parseSpecialTokens: true);
        var tokens = await Collect(session.GenerateAsync(prompt, GenerateOptions.Greedy with { IgnoreEndOfGeneration = true }));
        tokens[^1].FinishReason.Should().Be(FinishReason.ContextFull);
        tokens.Should().HaveCount(12 - prompt.Count + 1, "every position is filled, and the last sampled token is reported unfed");
        session.Tokens.Should().HaveCount(12);
    }

    [Fact]
    public async Task Bad_requests_fail_before_anything_runs()
    {
        using var model = Model.Load(ModelPath);
        using var session = model.CreateSession(8);
        var tooLong = Enumerable.Repeat(1, 9).ToArray();
        await FluentActions.Awaiting(() => Collect(session.GenerateAsync(tooLong))).Should().ThrowAsync<ContextOverflowException>();
        await FluentActions.Awaiting(() => Collect(session.GenerateAsync([model.Info.VocabularySize]))).Should().ThrowAsync<ArgumentOutOfRangeException>();
        await FluentActions.Awaiting(() => Collect(session.GenerateAsync([1], new GenerateOptions { TopP = 0 })))
            .Should().ThrowAsync<InvalidSamplingOptionsException>().Where(e => e.ParamName == "TopP");
        await FluentActions.Awaiting(() => Collect(session.GenerateAsync(Array.Empty<int>()))).Should().ThrowAsync<ArgumentException>();
        session.Tokens.Should().BeEmpty("nothing was fed");
    }

    [Fact]
    public async Task One_generation_at_a_time_per_session_and_a_disposed_session_refuses_work()
    {
        using var model = Model.Load(ModelPath);
        var session = model.CreateSession(256);
        await using (var first = session.GenerateAsync("Once upon a time", GenerateOptions.Greedy with { MaxTokens = 20 }).GetAsyncEnumerator())
        {
            (await first.MoveNextAsync()).Should().BeTrue();
            await FluentActions.Awaiting(() => Collect(session.GenerateAsync("Hello"))).Should().ThrowAsync<InvalidOperationException>();
        }
        session.Dispose();
        session.Dispose();
        FluentActions.Invoking(() => session.GenerateAsync("Hello")).Should().Throw<ObjectDisposedException>();
        model.KvCacheStatistics.BlocksInUse.Should().Be(0, "the disposed session's blocks went back to the pool");
        long touched = model.BytesInMemory;
        touched.Should().BeGreaterThan(model.Info.WeightBytes, "the cache blocks touched so far stay allocated for the next session");
        using (var next = model.CreateSession(256))
            await foreach (var _ in next.GenerateAsync("Once upon a time", GenerateOptions.Greedy with { MaxTokens = 20 })) { }
        model.BytesInMemory.Should().Be(touched, "the next session reuses the blocks the first one gave back");
    }

    [Fact]
    public void Model_facts_come_from_the_file()
    {
        using var model = Model.Load(ModelPath);
        var info = model.Info;
        info.Architecture.Should().Be("llama");
        info.VocabularySize.Should().Be(512);
        info.LayerCount.Should().Be(5);
        info.EmbeddingLength.Should().Be(64);
        info.TensorTypes.Keys.Should().Contain("F32");
        info.ParameterCount.Should().BeInRange(250_000, 300_000, "stories260K has about 260K parameters");
        info.WeightBytes.Should().BeGreaterThan(info.ParameterCount * 3);
        info.Device.Should().Be("cpu");
        model.Detokenize(model.Tokenize("Once upon a time")).Should().Be("Once upon a time");
        FluentActions.Invoking(() => model.Detokenize([-1])).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => Model.Load("no/such/model.gguf")).Should().Throw<FileNotFoundException>();
    }

    [Fact]
    public void The_whole_trained_context_can_be_asked_for()
    {
        // A small Qwen3-shaped model whose file says it was trained for 8192 tokens, above the default cap of 4096.
        var folder = Directory.CreateTempSubdirectory("engine-context-");
        var path = Path.Combine(folder.FullName, "qwen3-8k.gguf");
        var preset = Engine.Convert.Presets.PresetCatalog.Find("test-qwen3")! with { ContextLength = 8192 };
        Engine.Convert.Gguf.GgufSynthesizer.Write(new Engine.Convert.SynthOptions(preset, Engine.Convert.Quant.OutputType.Find("Q8_0")!, path)
        {
            VocabPath = TestPaths.Repo("Engine.Tests", "Fixtures", "fx-qwen3-F32.gguf"),
        }, log: null);
        using var capped = Model.Load(path);
        using var whole = Model.Load(path, new ModelLoadOptions { ContextLength = ModelLoadOptions.TrainedContext });
        whole.Info.TrainedContextLength.Should().BeGreaterThan(4096, "the fixture keeps its trained context above the default cap");
        whole.Info.ContextLength.Should().Be(whole.Info.TrainedContextLength);
        capped.Info.ContextLength.Should().Be(4096);
        FluentActions.Invoking(() => Model.Load(path, new ModelLoadOptions { ContextLength = -2 })).Should().Throw<ArgumentOutOfRangeException>();
        capped.Dispose();
        whole.Dispose();
        folder.Delete(recursive: true);
    }

    [Fact]
    public async Task Loading_reports_progress_and_runs_off_the_calling_thread()
    {
        var reports = new List<ModelLoadProgress>();
        var progress = new SynchronousProgress(reports.Add);
        using var model = await Model.LoadAsync(ModelPath, new ModelLoadOptions { Progress = progress, ContextLength = 300 });
        reports.Should().NotBeEmpty();
        reports[^1].Fraction.Should().Be(1);
        model.Info.ContextLength.Should().Be(300);
        using var session = model.CreateSession();
        session.ContextLength.Should().Be(300);
    }

    sealed class SynchronousProgress(Action<ModelLoadProgress> report) : IProgress<ModelLoadProgress>
    {
        public void Report(ModelLoadProgress value) { lock (this) report(value); }
    }
}
