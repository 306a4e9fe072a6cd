using Engine.Quantization;

namespace Engine.Cli.Commands;

/// <summary>`engine quantize`: llama-quantize's types and mixes, the same tensor types and bytes
/// (<see cref="ModelQuantizer"/>).</summary>
public static class QuantizeCommand
{
    static string Help => $"""
        usage: engine quantize IN.gguf OUT.gguf TYPE [--pure] [--imatrix F [--include-weights S | --exclude-weights S]...]
                               [--threads N] [--allow-requantize]
        Quantizes an F32, F16 or BF16 GGUF as llama-quantize does: the same type for every tensor (the mix's choice by
        name, shape and layer) and the same bytes. OUT is written to a temporary file and renamed when complete.
          TYPE                one of {QuantizationMixes.Names}
          --pure              every quantizable tensor in the type's base type (no mix rules, no Q6_K output)
          --imatrix F         importance matrix (from `engine imatrix` or llama-imatrix; GGUF or legacy .dat): the
                              weights are quantized with importance weights, as llama-quantize --imatrix does
          --include-weights S use the importance matrix only for tensors whose name contains S (repeatable)
          --exclude-weights S do not use it for tensors whose name contains S (repeatable)
          --threads N         worker threads (default: one per core); the output does not depend on it
          --allow-requantize  accept tensors that are quantized already (they are dequantized first; quality suffers)
        """;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, new HashSet<string> { "pure", "allow-requantize", "help", "h" },
            repeatable: new HashSet<string> { "include-weights", "exclude-weights" });
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        var imatrix = cl.String("imatrix");
        var include = cl.Strings("include-weights");
        var exclude = cl.Strings("exclude-weights");
        int threads = cl.Int("threads", 0, 1, 1024, alias: "t");
        bool pure = cl.Has("pure"), requantize = cl.Has("allow-requantize");
        cl.RejectUnknown();
        if (cl.Positionals.Count != 3) throw new UsageException("quantize takes IN.gguf OUT.gguf TYPE");
        var (input, output, type) = (cl.Positionals[0], cl.Positionals[1], cl.Positionals[2]);
        if (!File.Exists(input)) throw new UsageException($"no such input file: {input}");
        if (imatrix is not null && !File.Exists(imatrix)) throw new UsageException($"no such imatrix file: {imatrix}");
        if ((include.Count > 0 || exclude.Count > 0) && imatrix is null)
            throw new UsageException("--include-weights and --exclude-weights select entries of an importance matrix: give --imatrix F");
        if (include.Count > 0 && exclude.Count > 0) throw new UsageException("give --include-weights or --exclude-weights, not both");
        if (QuantizationMixes.Find(type) is null)
            throw new UsageException($"unknown type '{type}'; valid types: {QuantizationMixes.Names}");
        var folder = Path.GetDirectoryName(Path.GetFullPath(output))!;
        if (!Directory.Exists(folder)) throw new UsageException($"no such folder for the output: {folder}");

        // Ctrl-C and kill (SIGTERM) cancel the quantization so that the temporary file is removed before we exit.
        using var cts = new CancellationTokenSource();
        using var onInterrupt = System.Runtime.InteropServices.PosixSignalRegistration.Create(
            System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; cts.Cancel(); });
        using var onTerminate = System.Runtime.InteropServices.PosixSignalRegistration.Create(
            System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; cts.Cancel(); });
        var watch = System.Diagnostics.Stopwatch.StartNew();
        long bytesIn = 0, bytesOut = 0;
        try
        {
            ModelQuantizer.Quantize(input, output, new QuantizeOptions
            {
                Type = type, Pure = pure, ImatrixPath = imatrix, IncludeWeights = include, ExcludeWeights = exclude,
                Threads = threads, AllowRequantize = requantize,
            }, new SyncProgress(p =>
            {
                bytesIn += p.BytesIn;
                bytesOut += p.BytesOut;
                // As llama-quantize, say which converted tensors the importance matrix had nothing for.
                var note = imatrix is not null && p.From != p.To && !p.Weighted ? " (no importance data)" : "";
                Console.Error.WriteLine($"[{p.Index,4}/{p.Count,4}] {p.Name,-36} [{string.Join(", ", p.Shape)}] {p.From} -> {p.To}, " +
                                        $"{p.BytesIn / 1048576.0:F2} MiB -> {p.BytesOut / 1048576.0:F2} MiB{note}");
            }), cts.Token);
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("engine: quantize cancelled; nothing was written");
            return 130;
        }
        catch (QuantizationException e)
        {
            Console.Error.WriteLine($"engine: {e.Message}");
            return 1;
        }
        Console.Error.WriteLine($"quantized {input} to {type}: {bytesIn / 1048576.0:F2} MiB -> {bytesOut / 1048576.0:F2} MiB in {watch.Elapsed.TotalSeconds:F1} s");
        Console.WriteLine(output);
        return 0;
    }

    /// <summary>Reports on the calling thread, in order (Progress&lt;T&gt; would post to the thread pool).</summary>
    sealed class SyncProgress(Action<QuantizeProgress> report) : IProgress<QuantizeProgress>
    {
        public void Report(QuantizeProgress value) => report(value);
    }
}
