using Engine.Backends;
using Engine.Backends.Cpu;
using Engine.Batching;
using Engine.Formats.Gguf;
using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Batching;

/// <summary>
/// What one scheduler step costs: with several requests running, a recording backend shows each weight matrix
/// multiplied once per step over every row of the step (all sequences' decode tokens and prompt chunks together), and
/// the output matrix only over the rows whose logits are sampled. Memory: the pool's bytes follow the tokens held,
/// not sessions x context; a request that cannot fit is refused at once.
/// </summary>
public class SchedulerStepTests
{
    static readonly string ModelPath = TestPaths.Repo("models", "stories260K.gguf");

    [Fact]
    public async Task A_step_multiplies_each_weight_matrix_once_over_all_its_rows()
    {
        using var file = GgufFile.Open(ModelPath);
        var config = GgufModelConfig.Read(file);
        var backend = new RecordingBackend(new CpuBackend(2));
        using var network = new Llama(config, LlamaWeights.Load(config, new GgufTensorSource(file)), backend);
        using var loaded = LoadedModel.Open(ModelPath);
        var tokenizer = loaded.Tokenizer;
        using var store = network.CreateStore(64, KvElementType.F32);
        using var scheduler = new Scheduler(network, store, () => tokenizer);
        var steps = new List<(int Rows, int Sequences, int LogitRows, int MatMulsBefore)>();
        scheduler.StepTap = batch => steps.Add((batch.Rows, batch.Sequences, batch.LogitRowCount, backend.MatMuls.Count));

        // Six requests with prompts of different lengths (one longer than a step's rows, so it is read in chunks).
        var prompts = new[] { 5, 17, 3, 90, 40, 9 }.Select((n, i) => Enumerable.Range(0, n).Select(t => 3 + (t * 7 + i * 13) % 400).ToArray()).ToList();
        var jobs = prompts.Select(p =>
        {
            var options = GenerateOptions.Greedy with { MaxTokens = 12, IgnoreEndOfGeneration = true };
            var job = new GenerationJob(new KvSequence(256), options, options.ToSampler(config.VocabSize), [], config.VocabSize);
            scheduler.Start(job, _ => (0, p));
            return job;
        }).ToList();
        var readers = jobs.Select(async job =>
        {
            int count = 0;
            await foreach (var _ in job.Output.Reader.ReadAllAsync()) { job.CountRead(); scheduler.Wake(); count++; }
            return count;
        }).ToList();
        (await Task.WhenAll(readers)).Should().AllSatisfy(n => n.Should().Be(12));

        steps.Max(s => s.Sequences).Should().BeGreaterThanOrEqualTo(4, "the requests ran together");
        steps.Sum(s => s.Rows).Should().Be(prompts.Sum(p => p.Length) + jobs.Count * 11, "every prompt token and every generated token but the last is read once");
        var output = network.Weights.Output;
        int perStep = config.LayerCount * 7 + 1;
        for (int i = 0; i < steps.Count; i++)
        {
            int end = i + 1 < steps.Count ? steps[i + 1].MatMulsBefore : backend.MatMuls.Count;
            var calls = backend.MatMuls.GetRange(steps[i].MatMulsBefore, end - steps[i].MatMulsBefore);
            calls.Should().HaveCount(perStep, $"step {i}: seven matrices per layer and the output, each once");
            calls.Select(c => c.Weights).Distinct(ReferenceEqualityComparer.Instance).Should().HaveCount(perStep);
            foreach (var (weights, rows) in calls)
                rows.Should().Be(ReferenceEquals(weights, output) ? steps[i].LogitRows : steps[i].Rows,
                    $"step {i} covers all of its {steps[i].Rows} rows from {steps[i].Sequences} sequences in one call per matrix");
        }
    }

    [Fact]
    public async Task Memory_in_use_follows_the_tokens_held_not_sessions_times_context()
    {
        using var model = Model.Load(ModelPath, new ModelLoadOptions { ContextLength = 512, ParallelSequences = 8 });
        var statistics = model.KvCacheStatistics;
        statistics.CapacityTokens.Should().Be(8 * 512, "the default pool holds ParallelSequences full contexts");
        statistics.Bytes.Should().Be(0, "nothing is held yet");

        var sessions = Enumerable.Range(0, 8).Select(_ => model.CreateSession(512)).ToList();
        model.KvCacheStatistics.Bytes.Should().Be(0, "a session takes memory as its tokens arrive, not when it is made");
        var prompt = model.Tokenize("Once upon a time");
        await Task.WhenAll(sessions.Select(s => Task.Run(async () =>
        {
            await foreach (var _ in s.GenerateAsync(prompt, GenerateOptions.Greedy with { MaxTokens = 40, IgnoreEndOfGeneration = true })) { }
        })));
        var after = model.KvCacheStatistics;
        int tokensPerSession = prompt.Count + 40;
        int blocksPerSession = (tokensPerSession - 1 + after.BlockTokens - 1) / after.BlockTokens; // the last token is not fed yet
        long blockBytes = after.Bytes / after.BlocksInUse;
        after.BlocksInUse.Should().Be(8 * blocksPerSession);
        after.Bytes.Should().Be(8L * blocksPerSession * blockBytes, "memory is the blocks the tokens fill");
        after.Bytes.Should().BeLessThan(after.Blocks * blockBytes / 4, "8 sessions of 512 tokens holding ~45 tokens each use a small part of the pool");
        foreach (var s in sessions) s.Dispose();
        model.KvCacheStatistics.BlocksInUse.Should().Be(0);
    }

    [Fact]
    public async Task A_request_longer_than_the_pool_is_refused_at_once()
    {
        long blockBytes;
        using (var probe = Model.Load(ModelPath)) blockBytes = ContinuousBatchingTests.ProbeBlockBytes(probe);
        FluentActions.Invoking(() => Model.Load(ModelPath, new ModelLoadOptions { KvCacheBytes = blockBytes - 1 }))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*less than one KV block*");
        using var model = Model.Load(ModelPath, new ModelLoadOptions { ContextLength = 256, KvCacheBytes = blockBytes });
        var capacity = model.Info.KvCacheCapacity;
        capacity.Should().Be(model.KvCacheStatistics.BlockTokens, "the smallest pool is one block");
        FluentActions.Invoking(() => model.CreateSession(capacity + 1)).Should().Throw<ArgumentOutOfRangeException>()
            .WithMessage("*cannot fit in the model's KV cache*--kv-budget*");
        using var session = model.CreateSession(capacity);
        var tooLong = Enumerable.Repeat(5, capacity + 1).ToArray();
        long steps = model.Scheduler.Steps;
        await FluentActions.Awaiting(async () => { await foreach (var _ in session.GenerateAsync(tooLong)) { } })
            .Should().ThrowAsync<ContextOverflowException>();
        model.Scheduler.Steps.Should().Be(steps, "it was refused before any step");
        model.KvCacheStatistics.BlocksInUse.Should().Be(0);
    }
}
