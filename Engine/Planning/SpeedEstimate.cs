using System.Diagnostics;
using System.Numerics.Tensors;
using Engine.Formats;

namespace Engine.Planning;

/// <summary>
/// Expected prompt (pp) and generation (tg) speed from two quick measurements of this machine, before loading.
///
/// Generation reads every weight once per token (MoE: the experts used) and the KV cache up to the depth, so it is
/// bandwidth-bound: tg = <see cref="GenerationEfficiency"/> x bandwidth / (weight bytes per token + KV bytes per
/// position x depth), unless the kernels cannot compute that fast (few cores, float16 weights): then tg = decode
/// rate(type) x measured float throughput / flops per token. Prompt processing is compute-bound: pp = prompt rate(type)
/// x measured float throughput / (2 x weights used per token + attention's flops at the average depth). The rates are
/// what the engine's kernels reached on the reference machine relative to the same throughput measurement
/// (docs/models.md has the measurements they come from).
/// </summary>
internal static class SpeedEstimate
{
    /// <summary>Share of the streaming-read bandwidth a decode step reaches (the rest: compute between reads,
    /// synchronization, the KV cache's scattered blocks).</summary>
    public const double GenerationEfficiency = 0.80;

    /// <summary>The kernels' throughput relative to <see cref="MeasureFlopsPerSecond"/>, by the weight type that holds
    /// most of the model's bytes, for a prompt (64-row matmuls) and for one generated row. The repacked 8-row K-quant
    /// kernels multiply in int8 and beat a float dot; float16 and bfloat16 weights convert every element.</summary>
    public static (double Prompt, double Decode) KernelRates(GgmlType dominant) => dominant switch
    {
        GgmlType.Q4_K or GgmlType.Q4_0 or GgmlType.Q6_K => (2.7, 1.5),
        GgmlType.Q8_0 => (1.8, 0.5),
        GgmlType.F16 => (1.8, 0.2),
        GgmlType.BF16 => (3.0, 0.33),
        _ => (1.0, 0.2),
    };

    /// <summary>Tokens/s of one sequence generating with `depth` positions already in its cache.</summary>
    public static double Generation(MemoryEstimate e, double bytesPerSecond, double flopsPerSecond, int depth, GgmlType dominant)
    {
        double memoryBound = GenerationEfficiency * bytesPerSecond / (e.WeightBytesPerToken + (double)e.KvBytesPerToken * depth);
        double computeBound = KernelRates(dominant).Decode * flopsPerSecond / (e.MatMulFlopsPerToken + AttentionFlops(e, depth));
        return Math.Min(memoryBound, computeBound);
    }

    /// <summary>Tokens/s of a prompt of `tokens` tokens fed from an empty cache.</summary>
    public static double Prompt(MemoryEstimate e, double flopsPerSecond, int tokens, GgmlType dominant) =>
        KernelRates(dominant).Prompt * flopsPerSecond / (e.MatMulFlopsPerToken + AttentionFlops(e, tokens / 2.0));

    /// <summary>Flops of one token's attention over `depth` cached positions: a dot with every key and a weighted sum of
    /// every value, in every head of every layer.</summary>
    static double AttentionFlops(MemoryEstimate e, double depth)
    {
        var c = e.Config;
        return 2.0 * c.LayerCount * c.HeadCount * (c.HeadDim + c.ValueHeadDim) * depth;
    }
    /// <summary>Floating-point operations per second of `threads` workers running the float dot product of the
    /// kernels' library over cache-resident rows, best of a few short rounds.</summary>
    public static double MeasureFlopsPerSecond(int threads, int milliseconds = 40)
    {
        threads = Math.Max(1, threads);
        const int Width = 2048;
        double best = 0;
        for (int round = 0; round < 3; round++)
        {
            long dots = 0;
            var watch = Stopwatch.StartNew();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, _ =>
            {
                var a = new float[Width]; var b = new float[Width];
                a.AsSpan().Fill(1.0001f); b.AsSpan().Fill(0.9999f);
                long n = 0;
                float sink = 0;
                var clock = Stopwatch.StartNew();
                while (clock.ElapsedMilliseconds < milliseconds)
                {
                    for (int i = 0; i < 64; i++) sink += TensorPrimitives.Dot<float>(a, b);
                    n += 64;
                }
                if (sink == 42) Console.Write(""); // keeps the loop from being optimized away
                Interlocked.Add(ref dots, n);
            });
            best = Math.Max(best, dots * 2.0 * Width / watch.Elapsed.TotalSeconds);
        }
        return best;
    }
}
