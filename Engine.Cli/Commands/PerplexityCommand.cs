using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Engine.Cli.Commands;

/// <summary>`engine perplexity`: a text's perplexity by llama-perplexity's method (<see cref="Model.PerplexityAsync(string, PerplexityOptions?, CancellationToken)"/>),
/// printed as llama-perplexity prints it.</summary>
public static class PerplexityCommand
{
    const string Help = """
        usage: engine perplexity --model M --file F [--ctx 512] [--chunks N] [--json]
                                 [--threads N] [--device D] [--gpu-layers N] [--no-repack]
        Cuts the file's tokens into windows of --ctx tokens, runs each in a fresh F32 KV cache (its first token replaced by
        BOS when the vocabulary adds one) and scores the second half of each, as llama-perplexity does; the file must come
        to at least 2 x ctx tokens.
          --ctx N      tokens per window (default 512), at most the model's trained context
          --chunks N   evaluate only the first N windows (default: all)
          --json       {"perplexity":..,"tokens":..} on stdout (tokens: the tokens scored), nothing per window
        """ + ModelArguments.GptqHelp;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, ModelArguments.Flags);
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        var file = cl.String("file", "f") ?? throw new UsageException("--file F is required: the text to measure");
        int ctx = cl.Int("ctx", 512, 3, 1 << 24, alias: "c");
        int? chunks = cl.String("chunks") is null ? null : cl.Int("chunks", 0, 1, int.MaxValue);
        bool json = cl.Has("json");
        if (cl.String("model", "m") is null) throw new UsageException("--model is required");
        // The sessions' KV cache goes unused (the windows run in a cache of their own): one window's worth.
        var options = ModelArguments.SinglePassOptions(cl, ctx);
        cl.RejectUnknown();
        var text = ModelArguments.ReadTextFile(file);

        using var model = ModelArguments.Load(cl, required: true, options);
        if (ctx > model.Info.TrainedContextLength)
            throw new UsageException($"--ctx {ctx} is more than the model's trained context of {model.Info.TrainedContextLength} tokens: use a smaller --ctx");
        var stdout = Console.Out;
        var progress = json ? null : new ChunkPrinter(stdout);
        PerplexityResult result;
        try
        {
            result = model.PerplexityAsync(text, new PerplexityOptions { ContextLength = ctx, MaxChunks = chunks, Progress = progress })
                .GetAwaiter().GetResult();
        }
        catch (ArgumentException e) when (e.ParamName is not null)
        {
            // The text is too short for the window, or a window longer than the model's context: said without the
            // library's parameter name, which means nothing on a command line.
            Console.Error.WriteLine("engine: " + e.Message.Replace($" (Parameter '{e.ParamName}')", ""));
            return 1;
        }
        if (json)
        {
            stdout.WriteLine(JsonSerializer.Serialize(new
            {
                perplexity = result.Perplexity, tokens = result.ScoredTokens, uncertainty = result.Uncertainty,
                chunks = result.Chunks, ctx = result.ContextLength, text_tokens = result.TextTokens,
            }));
            return 0;
        }
        stdout.WriteLine();
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Final estimate: PPL = {result.Perplexity:F4} +/- {result.Uncertainty:F5} ({result.ScoredTokens} tokens scored in {result.Chunks} chunks of {ctx})"));
        return 0;
    }

    /// <summary>The file as llama.cpp's -f reads it: the whole text, one trailing newline dropped.</summary>

    /// <summary>Prints the running estimate after each window as llama-perplexity does ("[1]12.3456,[2]..."), as it happens.</summary>
    sealed class ChunkPrinter(TextWriter output) : IProgress<PerplexityProgress>
    {
        public void Report(PerplexityProgress value)
        {
            output.Write(string.Create(CultureInfo.InvariantCulture, $"[{value.Chunk}]{value.Perplexity:F4},"));
            output.Flush();
        }
    }
}
