using System.Text;

namespace Engine.Cli.Commands;

/// <summary>`engine imatrix`: the importance matrix llama-imatrix computes, written in its GGUF format for
/// llama-quantize's --imatrix (<see cref="Model.ImportanceMatrixAsync(string, ImportanceMatrixOptions?, CancellationToken)"/>).</summary>
public static class ImatrixCommand
{
    const string Help = """
        usage: engine imatrix --model M --file F [--ctx 512] [--chunks N] [--out imatrix.gguf]
                              [--threads N] [--device D] [--gpu-layers N] [--no-repack]
        Reads the file in chunks of --ctx tokens (each in a fresh F32 KV cache, its first token replaced by BOS when the
        vocabulary adds one) and sums, for every weight matrix of the blocks, each input column's squared activation
        over the tokens that went in (per expert for MoE expert weights), as llama-imatrix does; the file must come to at
        least 2 x ctx tokens. The output matrix is not collected; models with a shared expert (qwen2moe) are not supported.
          --ctx N      tokens per chunk (default 512), at most the model's trained context
          --chunks N   read only the first N chunks (default: all)
          --out F      the GGUF file to write (default imatrix.gguf), written whole or not at all
        """ + ModelArguments.GptqHelp;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, ModelArguments.Flags);
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        var file = cl.String("file", "f") ?? throw new UsageException("--file F is required: the text to read");
        int ctx = cl.Int("ctx", 512, 1, 1 << 24, alias: "c");
        int? chunks = cl.String("chunks") is null ? null : cl.Int("chunks", 0, 1, int.MaxValue);
        var output = cl.String("out", "o") ?? "imatrix.gguf";
        if (cl.String("model", "m") is null) throw new UsageException("--model is required");
        var options = ModelArguments.SinglePassOptions(cl, ctx);
        cl.RejectUnknown();
        var text = ModelArguments.ReadTextFile(file);
        var folder = Path.GetDirectoryName(Path.GetFullPath(output))!;
        if (!Directory.Exists(folder)) throw new UsageException($"no such folder for --out: {folder}");

        using var model = ModelArguments.Load(cl, required: true, options);
        if (ctx > model.Info.TrainedContextLength)
            throw new UsageException($"--ctx {ctx} is more than the model's trained context of {model.Info.TrainedContextLength} tokens: use a smaller --ctx");
        ImportanceMatrix matrix;
        try
        {
            matrix = model.ImportanceMatrixAsync(text, new ImportanceMatrixOptions
            {
                ContextLength = ctx, MaxChunks = chunks, Datasets = [file], Progress = new ChunkPrinter(),
            }).GetAwaiter().GetResult();
        }
        catch (ArgumentException e) when (e.ParamName is not null)
        {
            Console.Error.WriteLine("engine: " + e.Message.Replace($" (Parameter '{e.ParamName}')", ""));
            return 1;
        }
        Console.Error.WriteLine();
        matrix.Save(output);
        Console.WriteLine($"stored {matrix.Entries.Count} entries after {matrix.ChunkCount} chunks of {matrix.ChunkSize} tokens in {output}");
        return 0;
    }

    /// <summary>The file as llama.cpp's -f reads it: the whole text, one trailing newline dropped.</summary>

    /// <summary>"[1][2]..." on stderr as chunks finish.</summary>
    sealed class ChunkPrinter : IProgress<int>
    {
        public void Report(int value)
        {
            Console.Error.Write($"[{value}]");
            Console.Error.Flush();
        }
    }
}
