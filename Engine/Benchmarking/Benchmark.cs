using System.Diagnostics;
using Engine.Models;

namespace Engine.Benchmarking;

/// <summary>What to measure, named as llama-bench names it: pp = prompt tokens fed in one call, tg = tokens
/// generated one decode at a time, each test repeated with a fresh KV cache after one unmeasured warm-up.</summary>
internal sealed record BenchOptions(int PromptTokens = 128, int GeneratedTokens = 64, int Repetitions = 3, int Seed = 1234);

/// <summary>Tokens per second over the repetitions of one test (mean and sample standard deviation).</summary>
internal sealed record BenchStat(string Test, int Tokens, double[] Seconds)
{
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
/// warm-up, the prompt as one call (logits of its last token only), generation as single-token decodes
/// starting from an empty context.</summary>
internal static class Benchmark
{
    public static BenchResult Run(Llama model, BenchOptions options, Action<string>? progress = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(options.PromptTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(options.GeneratedTokens);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Repetitions, 1);
        int vocab = model.Config.VocabSize;
        var random = new Random(options.Seed);
        var logits = new float[vocab];
        var cache = model.CreateCache(Math.Max(1, Math.Max(options.PromptTokens, options.GeneratedTokens)));

        BenchStat? prompt = null, generation = null;
        if (options.PromptTokens > 0)
        {
            var tokens = new int[options.PromptTokens];
            prompt = Measure($"pp{options.PromptTokens}", options.PromptTokens, options.Repetitions, progress, () =>
            {
                for (int i = 0; i < tokens.Length; i++) tokens[i] = random.Next(vocab);
                // Starting again at position 0 is a fresh cache: attention only reads positions written by this pass.
                var watch = Stopwatch.StartNew();
                model.Forward(tokens, 0, cache, logits);
                return watch.Elapsed.TotalSeconds;
            });
        }
        Engine.Backends.HostTransferSnapshot? copies = null;
        if (options.GeneratedTokens > 0)
        {
            var counted = model.Stages.Select(s => s.Backend).OfType<Engine.Backends.IHostTransfers>().Select(b => b.HostTransfers).ToList();
            var before = Total(counted);
            var token = new int[1];
            generation = Measure($"tg{options.GeneratedTokens}", options.GeneratedTokens, options.Repetitions, progress, () =>
            {
                token[0] = random.Next(vocab);
                var watch = Stopwatch.StartNew();
                for (int i = 0; i < options.GeneratedTokens; i++)
                {
                    model.Forward(token, i, cache, logits);
                    token[0] = random.Next(vocab);
                }
                return watch.Elapsed.TotalSeconds;
            });
            if (counted.Count > 0) copies = (Total(counted) - before).Per((options.Repetitions + 1.0) * options.GeneratedTokens);
        }
        return new BenchResult(prompt, generation, copies);
    }

    static Engine.Backends.HostTransferSnapshot Total(List<Engine.Backends.HostTransferCount> counts) =>
        counts.Aggregate(new Engine.Backends.HostTransferSnapshot(), (sum, c) => sum + c.Snapshot());

    static BenchStat Measure(string test, int tokens, int repetitions, Action<string>? progress, Func<double> once)
    {
        progress?.Invoke($"{test}: warm-up");
        once();
        var seconds = new double[repetitions];
        for (int r = 0; r < repetitions; r++)
        {
            progress?.Invoke($"{test}: repetition {r + 1}/{repetitions}");
            seconds[r] = once();
        }
        return new BenchStat(test, tokens, seconds);
    }
}
