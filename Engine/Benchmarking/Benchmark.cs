using System.Diagnostics;
using Engine.Models;

namespace Engine.Benchmarking;

/// <summary>What to measure, named as llama-bench names it: pp = prompt tokens fed in one call, tg = tokens
/// generated one decode at a time, each test repeated with a fresh KV cache after one unmeasured warm-up.</summary>
internal sealed record BenchOptions(int PromptTokens = 128, int GeneratedTokens = 64, int Repetitions = 3, int Seed = 1234)
{
    /// <summary>Tokens in each sequence's cache before each test (untimed), as llama-bench's -d.</summary>
    public int Depth { get; init; }
    /// <summary>Sequences generating together in tg, one token each per step.</summary>
    public int Parallel { get; init; } = 1;
    public Engine.Backends.KvElementType KvType { get; init; } = Engine.Backends.KvElementType.F16;
    /// <summary>Time each kind of operation (matmul by type, attention, norms, sampling) in the measured runs.</summary>
    public bool Profile { get; init; }
    /// <summary>tg samples each next token from the logits (default options, seeded) and feeds it, instead of feeding
    /// random ids; implied by <see cref="Grammar"/>. One sequence only.</summary>
    public bool Sample { get; init; }
    /// <summary>tg samples under this grammar (the mask, the sampler and the grammar's advance are timed with the
    /// forward pass); when the grammar ends, it starts over.</summary>
    public Engine.Grammar.GrammarConstraint? Grammar { get; init; }
}

/// <summary>Tokens per second over the repetitions of one test (mean and sample standard deviation).</summary>
internal sealed record BenchStat(string Test, int Tokens, double[] Seconds)
{
    /// <summary>With profiling: each kind of operation's seconds and calls per repetition, most time first.</summary>
    public IReadOnlyList<(string Operation, double Seconds, long Calls)>? Operations { get; init; }

    public double[] TokensPerSecond => [.. Seconds.Select(s => Tokens / s)];
    public double Mean => TokensPerSecond.Average();
    public double StdDev
    {
        get
        {
            var v = TokensPerSecond;
            if (v.Length < 2) return 0;
            double mean = v.Average();
            return Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1));
        }
    }
}

/// <summary>The tests' figures; for a model on a device, also the host-device copies per generated token
/// (summed over the stages whose backend counts them; null when none does).</summary>
internal sealed record BenchResult(BenchStat? Prompt, BenchStat? Generation, Engine.Backends.HostTransferSnapshot? CopiesPerGeneratedToken = null);

/// <summary>llama-bench's method on our forward pass: random token ids, a fresh cache per repetition, one
/// warm-up, the prompt in steps of the model's batch (logits of its last token only), generation as decode steps.
/// With a depth D, each repetition first puts D random tokens in every sequence's cache (untimed), as llama-bench's -d
/// does; with Parallel N sequences, each generation step decodes one token of every sequence in one batch (a
/// server's parallel slots) and tg counts the tokens of all of them. The KV cache is paged, as sessions use it.</summary>
internal static class Benchmark
{
    public static BenchResult Run(Llama model, BenchOptions options, Action<string>? progress = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(options.PromptTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(options.GeneratedTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(options.Depth);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Repetitions, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Parallel, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.Parallel, model.MaxBatch);
        var times = options.Profile ? new OperationTimes { Recording = false } : null;
        // Profiling runs the same weights through backends that time each operation.
        var network = times is null ? model
            : new Llama(model.Config, model.Weights, [.. model.Stages.Select(s => s with { Backend = new TimingBackend(s.Backend, times) })], model.MaxBatch);
        try { return Run(network, options, times, progress); }
        finally { if (!ReferenceEquals(network, model)) network.Dispose(); } // the timing backends own nothing
    }

    static BenchResult Run(Llama model, BenchOptions options, OperationTimes? times, Action<string>? progress)
    {
        int vocab = model.Config.VocabSize;
        int depth = options.Depth, sequences = options.Parallel;
        var random = new Random(options.Seed);
        int bt = Llama.DefaultBlockTokens;
        int blocksPerSequence = (depth + Math.Max(1, Math.Max(options.PromptTokens, options.GeneratedTokens)) + bt - 1) / bt;
        using var store = model.CreateStore(blocksPerSequence * sequences, options.KvType);
        var tables = Enumerable.Range(0, sequences).Select(s => Enumerable.Range(s * blocksPerSequence, blocksPerSequence).ToArray()).ToArray();
        var batch = new ForwardBatch(bt);
        var logits = new float[sequences * vocab];
        string suffix = depth > 0 ? $"@d{depth}" : "";

        // Feeds `count` random tokens to one sequence from `position`, a model batch at a time; the last token's logits
        // come out when `logitsAtEnd`.
        void Feed(int sequence, int position, int count, bool logitsAtEnd)
        {
            var tokens = new int[Math.Min(count, model.MaxBatch)];
            for (int done = 0; done < count; done += model.MaxBatch)
            {
                int rows = Math.Min(model.MaxBatch, count - done);
                for (int i = 0; i < rows; i++) tokens[i] = random.Next(vocab);
                bool last = logitsAtEnd && done + rows == count;
                batch.Clear();
                batch.Add(tokens.AsSpan(0, rows), position + done, tables[sequence], last ? LogitsWanted.Last : LogitsWanted.None);
                model.Forward(batch, store, logits.AsSpan(0, last ? vocab : 0));
            }
        }

        // Every repetition starts on an empty cache: attention only reads the positions this repetition wrote.
        void FillDepth(int count)
        {
            for (int s = 0; s < count; s++) Feed(s, 0, depth, logitsAtEnd: false);
        }

        BenchStat? prompt = null, generation = null;
        if (options.PromptTokens > 0)
        {
            prompt = Measure($"pp{options.PromptTokens}{suffix}", options.PromptTokens, options.Repetitions, progress, times, () =>
            {
                FillDepth(1);
                if (times is not null) times.Recording = true;
                var watch = Stopwatch.StartNew();
                Feed(0, depth, options.PromptTokens, logitsAtEnd: true);
                double seconds = watch.Elapsed.TotalSeconds;
                if (times is not null) times.Recording = false;
                return seconds;
            });
        }
        Engine.Backends.HostTransferSnapshot? copies = null;
        if (options.GeneratedTokens > 0)
        {
            var counted = model.Stages.Select(s => s.Backend).OfType<Engine.Backends.IHostTransfers>().Select(b => b.HostTransfers).ToList();
            var sampler = times is null ? null : new Engine.Sampling.Sampler(new GenerateOptions().ToSampler(vocab), vocab);
            bool sampled = options.Sample || options.Grammar is not null;
            if (sampled && sequences != 1) throw new ArgumentException("sampled generation (a grammar) measures one sequence", nameof(options));
            var sampling = new GenerateOptions { Seed = (ulong)options.Seed }.ToSampler(vocab) with { Grammar = options.Grammar };
            var token = new int[1];
            var copied = new Engine.Backends.HostTransferSnapshot();
            generation = Measure($"tg{options.GeneratedTokens}{suffix}" + (sequences > 1 ? $"x{sequences}" : ""), options.GeneratedTokens * sequences,
                options.Repetitions, progress, times, () =>
            {
                FillDepth(sequences);
                var chooser = sampled ? new Engine.Sampling.Sampler(sampling, vocab) : null;
                int next = random.Next(vocab);
                var before = Total(counted);
                if (times is not null) times.Recording = true;
                var watch = Stopwatch.StartNew();
                for (int i = 0; i < options.GeneratedTokens; i++)
                {
                    batch.Clear();
                    for (int s = 0; s < sequences; s++)
                    {
                        token[0] = chooser is null ? random.Next(vocab) : next;
                        batch.Add(token, depth + i, tables[s], LogitsWanted.Last);
                    }
                    model.Forward(batch, store, logits);
                    if (chooser is not null)
                    {
                        next = chooser.Sample(logits.AsSpan(0, vocab), []);
                        // The grammar ended (end of generation): start it over, as a new request would.
                        if (chooser.Grammar is { IsEnded: true }) { chooser = new Engine.Sampling.Sampler(sampling, vocab); next = random.Next(vocab); }
                    }
                    if (sampler is not null)
                    {
                        long t = Stopwatch.GetTimestamp();
                        for (int s = 0; s < sequences; s++) sampler.Sample(logits.AsSpan(s * vocab, vocab), []);
                        times!.Add("sampling", Stopwatch.GetTimestamp() - t);
                    }
                }
                double seconds = watch.Elapsed.TotalSeconds;
                if (times is not null) times.Recording = false;
                copied += Total(counted) - before;
                return seconds;
            });
            // Per generated token over the warm-up and the repetitions (the depth fills are not counted).
            if (counted.Count > 0) copies = copied.Per((options.Repetitions + 1.0) * options.GeneratedTokens * sequences);
        }
        return new BenchResult(prompt, generation, copies);
    }

    static Engine.Backends.HostTransferSnapshot Total(List<Engine.Backends.HostTransferCount> counts) =>
        counts.Aggregate(new Engine.Backends.HostTransferSnapshot(), (sum, c) => sum + c.Snapshot());

    static BenchStat Measure(string test, int tokens, int repetitions, Action<string>? progress, OperationTimes? times, Func<double> once)
    {
        progress?.Invoke($"{test}: warm-up");
        once();
        times?.Clear(); // the warm-up is not profiled
        var seconds = new double[repetitions];
        for (int r = 0; r < repetitions; r++)
        {
            progress?.Invoke($"{test}: repetition {r + 1}/{repetitions}");
            seconds[r] = once();
        }
        return new BenchStat(test, tokens, seconds) { Operations = times?.Snapshot().Select(o => o with { Seconds = o.Seconds / repetitions, Calls = o.Calls / repetitions }).ToList() };
    }
}
