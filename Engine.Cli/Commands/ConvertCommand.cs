using Engine.Conversion;

namespace Engine.Cli.Commands;

/// <summary>`engine convert HF_FOLDER OUT.gguf [--type T]`: a Hugging Face safetensors folder to a GGUF file that
/// llama.cpp and the engine run, as llama.cpp's convert_hf_to_gguf.py writes it.</summary>
internal static class ConvertCommand
{
    const string Usage = """
        usage: engine convert HF_FOLDER OUT.gguf [--type F32|F16|BF16|Q8_0|Q4_K_M|...] [--threads N] [--quiet]
          converts a Llama, Qwen2, Qwen3, Qwen2-MoE or Qwen3-MoE safetensors folder (config.json, model.safetensors or
          model.safetensors.index.json with its shards, tokenizer.model or tokenizer.json) to GGUF with its tokenizer.
          --type   the weights' type (default F16, as llama.cpp's converter); norms, biases and routers stay F32;
                   a type or mix `engine quantize` takes converts to F32 first, then quantizes as it does
          A GPTQ (v1) or AWQ (gemm) 4-bit folder: default --type Q4_0. A symmetric checkpoint without act-order
          carries over exactly (the same 4-bit codes and f16 scales; other tensors keep their type); any other, or
          another --type, is dequantized and, for a quantized type, re-quantized (not lossless: the command says so)
          --threads  threads for a quantized type (default: one per core)
          --quiet  no progress on stderr
        """;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, new HashSet<string> { "help", "h", "quiet" });
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Usage); return 0; }
        string? type = cl.String("type");
        bool quiet = cl.Has("quiet");
        int threads = cl.Int("threads", 0, min: 0);
        cl.RejectUnknown();
        if (cl.Positionals.Count != 2) throw new UsageException("convert takes a Hugging Face folder and an output .gguf path");
        string folder = cl.Positionals[0], output = cl.Positionals[1];
        if (!Directory.Exists(folder)) throw new UsageException($"no such folder: {folder}");
        if (type is not null && !HfToGgufConverter.FloatTypes.Contains(type.ToUpperInvariant()) && Engine.Quantization.QuantizationMixes.Find(type) is null)
            throw new UsageException($"--type {type}: convert writes {string.Join(", ", HfToGgufConverter.FloatTypes)} or a type "
                + $"`engine quantize` takes: {Engine.Quantization.QuantizationMixes.Names}");

        var started = System.Diagnostics.Stopwatch.StartNew();
        long lastReport = -1;
        var progress = quiet ? null : new SynchronousProgress(p =>
        {
            // One line per tensor is noise for a small model; report about twice a second, and the last tensor.
            long now = started.ElapsedMilliseconds;
            if (p.TensorIndex != p.TensorCount && now - lastReport < 500) return;
            lastReport = now;
            double mib = p.BytesDone / 1048576.0, seconds = Math.Max(now / 1000.0, 1e-3);
            Console.Error.Write($"\rconvert: {p.TensorIndex}/{p.TensorCount} tensors, {mib:F0}/{p.BytesTotal / 1048576.0:F0} MiB ({mib / seconds:F0} MiB/s)   ");
            if (p.TensorIndex == p.TensorCount) Console.Error.WriteLine();
        });
        HfToGgufConverter.Convert(folder, output, new ConvertOptions(type?.ToUpperInvariant()) { Threads = threads, Log = line => Console.Out.WriteLine("convert: " + line) }, progress);
        Console.Out.WriteLine($"wrote {output} ({new FileInfo(output).Length:N0} bytes) in {started.Elapsed.TotalSeconds:F1} s");
        return 0;
    }

    /// <summary>Reports on the writing thread (Progress&lt;T&gt; would post to the thread pool and print out of order).</summary>
    sealed class SynchronousProgress(Action<ConvertProgress> report) : IProgress<ConvertProgress>
    {
        public void Report(ConvertProgress value) => report(value);
    }
}
