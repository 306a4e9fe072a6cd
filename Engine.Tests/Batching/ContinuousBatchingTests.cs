using Engine.Tests.Support;

namespace Engine.Tests.Batching;

/// <summary>
/// Continuous batching through the public API: random mixes of requests (different prompts and lengths, arrival times,
/// temperatures, token limits, some cancelled) run together on one model, and every request's logits rows are
/// bit-identical to the same request run alone on another instance of the model, so its tokens are the same at any
/// temperature. The same holds when the pool is so small that requests are preempted and computed again, and when
/// requests share a prefix that the prefix cache serves.
/// </summary>
public class ContinuousBatchingTests
{
    static readonly string ModelPath = TestPaths.Repo("models", "stories260K.gguf");
    const int SessionTokens = 128;

    sealed record Request(int[] Prompt, GenerateOptions Options, int DelayMilliseconds, int? CancelAfter);

    sealed record Outcome(List<int> Tokens, List<(int Position, int[] Bits)> Rows, bool Cancelled);

    /// <summary>1..16 requests: prompts of 1..60 tokens (after `prefix`, when given), 1..40 new tokens, greedy or sampled
    /// with a seed, arriving within 40 ms, one in four cancelled after a few tokens.</summary>
    static List<Request> RandomMix(int seed, int count, int vocabulary, int[] prefix)
    {
        var rng = new Random(seed);
        var requests = new List<Request>();
        for (int i = 0; i < count; i++)
        {
            var prompt = prefix.Concat(Enumerable.Range(0, rng.Next(1, 61)).Select(_ => rng.Next(3, vocabulary))).ToArray();
            var options = (rng.Next(2) == 0 ? GenerateOptions.Greedy : new GenerateOptions { Seed = (ulong)rng.Next() })
                with { MaxTokens = rng.Next(1, 41), IgnoreEndOfGeneration = rng.Next(2) == 0 };
            int? cancelAfter = rng.Next(4) == 0 ? rng.Next(1, 6) : null;
            requests.Add(new Request(prompt, options, rng.Next(0, 40), cancelAfter));
        }
        return requests;
    }

    static async Task<Outcome> Run(Model model, Request request, bool wait)
    {
        if (wait) await Task.Delay(request.DelayMilliseconds);
        using var session = model.CreateSession(SessionTokens);
        var rows = new List<(int, int[])>();
        session.LogitsTap = (position, logits) => { lock (rows) rows.Add((position, logits.Select(BitConverter.SingleToInt32Bits).ToArray())); };
        var tokens = new List<int>();
        using var cancel = new CancellationTokenSource();
        bool cancelled = false;
        try
        {
            await foreach (var token in session.GenerateAsync(request.Prompt, request.Options, cancel.Token))
            {
                tokens.Add(token.Id);
                if (tokens.Count == request.CancelAfter) cancel.Cancel();
            }
        }
        catch (OperationCanceledException) when (request.CancelAfter is not null) { cancelled = true; }
        lock (rows) return new Outcome(tokens, [.. rows], cancelled);
    }

    static async Task<List<Outcome>> Alone(IReadOnlyList<Request> requests, ModelLoadOptions options)
    {
        using var model = Model.Load(ModelPath, options);
        var outcomes = new List<Outcome>();
        foreach (var request in requests) outcomes.Add(await Run(model, request, wait: false));
        return outcomes;
    }

    static void ShouldMatchAlone(IReadOnlyList<Outcome> batched, IReadOnlyList<Outcome> alone, string because)
    {
        for (int i = 0; i < batched.Count; i++)
        {
            var (b, a) = (batched[i], alone[i]);
            b.Tokens.Should().Equal(a.Tokens, $"request {i} yields what it yields alone ({because})");
            b.Cancelled.Should().Be(a.Cancelled);
            // A stream's scheduler may sample a token or two ahead of a reader that then cancels: compare the rows both
            // runs computed, which cover every token read.
            int common = Math.Min(b.Rows.Count, a.Rows.Count);
            common.Should().BeGreaterThanOrEqualTo(Math.Min(b.Tokens.Count, a.Rows.Count));
            for (int r = 0; r < common; r++)
            {
                b.Rows[r].Position.Should().Be(a.Rows[r].Position);
                b.Rows[r].Bits.AsSpan().SequenceEqual(a.Rows[r].Bits).Should().BeTrue(
                    $"request {i}'s logits at position {b.Rows[r].Position} have the same bits batched and alone ({because})");
            }
        }
    }

    public static TheoryData<int> Mixes() => [101, 202, 303, 404, 505];

    [Theory, MemberData(nameof(Mixes))]
    public async Task Every_request_in_a_random_mix_gets_the_logits_it_gets_alone(int seed)
    {
        var options = new ModelLoadOptions { ContextLength = SessionTokens };
        using var model = Model.Load(ModelPath, options);
        var requests = RandomMix(seed, new Random(seed).Next(2, 17), model.Info.VocabularySize, []);
        int most = 0;
        model.Scheduler.StepTap = batch => most = Math.Max(most, batch.Sequences);
        // The scheduler waits for a second arrival before its first step, so the mix runs together however fast the first
        // request alone would be.
        _ = model.Scheduler.RunExclusive(_ => SpinWait.SpinUntil(() => model.KvCacheStatistics.WaitingRequests >= 2, TimeSpan.FromSeconds(10)));
        var batched = await Task.WhenAll(requests.Select(r => Task.Run(() => Run(model, r, wait: true))));
        most.Should().BeGreaterThan(1, "some steps ran several requests together");
        var alone = await Alone(requests, options);
        ShouldMatchAlone(batched, alone, $"{requests.Count} requests");
        model.KvCacheStatistics.BlocksInUse.Should().Be(0, "every session gave its blocks back");
    }

    [Theory]
    [InlineData(11)]
    [InlineData(12)]
    public async Task Preempted_requests_are_computed_again_to_the_same_bits(int seed)
    {
        // Eight blocks of 32 tokens for 16 requests of up to 100 tokens each: most of them are preempted at least once.
        long perBlock;
        using (var probe = Model.Load(ModelPath, new ModelLoadOptions { ContextLength = SessionTokens })) perBlock = ProbeBlockBytes(probe);
        var options = new ModelLoadOptions { ContextLength = SessionTokens, KvCacheBytes = 8 * perBlock };
        using var model = Model.Load(ModelPath, options);
        model.KvCacheStatistics.Blocks.Should().Be(8);

        var requests = RandomMix(seed, 16, model.Info.VocabularySize, []);
        var batched = await Task.WhenAll(requests.Select(r => Task.Run(() => Run(model, r, wait: true))));
        model.KvCacheStatistics.Preemptions.Should().BeGreaterThan(0, "16 requests do not fit in 8 blocks at once");
        var alone = await Alone(requests, options);
        ShouldMatchAlone(batched, alone, "with preemption");
    }

    [Fact]
    public async Task Requests_sharing_a_prefix_reuse_its_blocks_and_get_the_same_bits()
    {
        var options = new ModelLoadOptions { ContextLength = SessionTokens };
        using var model = Model.Load(ModelPath, options);
        var system = model.Tokenize("Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.").ToArray();
        system.Length.Should().BeGreaterThan(model.KvCacheStatistics.BlockTokens, "the shared prefix fills at least one block");

        // The first request computes the prefix; the others arrive after it and find its blocks.
        var requests = RandomMix(7, 8, model.Info.VocabularySize, system);
        var first = await Run(model, requests[0], wait: false);
        var rest = await Task.WhenAll(requests.Skip(1).Select(r => Task.Run(() => Run(model, r, wait: true))));
        var statistics = model.KvCacheStatistics;
        statistics.PrefixCacheHitTokens.Should().BeGreaterThanOrEqualTo(7L * (system.Length / statistics.BlockTokens * statistics.BlockTokens),
            "each later request reuses the prefix's full blocks");

        var alone = await Alone(requests, options);
        ShouldMatchAlone([first, .. rest], alone, "with prefix-cache hits");
    }

    /// <summary>The bytes of one KV block: the CPU pool allocates a block when a token is first stored in it.</summary>
    internal static long ProbeBlockBytes(Model model)
    {
        model.KvCacheStatistics.Bytes.Should().Be(0);
        using var session = model.CreateSession(8);
        foreach (var _ in session.GenerateAsync([1, 2], GenerateOptions.Greedy with { MaxTokens = 1 }).ToBlockingEnumerable()) { }
        return model.KvCacheStatistics.Bytes; // one block touched
    }
}
