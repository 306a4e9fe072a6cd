using System.Text.Json;
using Engine.Generation;

namespace Engine.Cli.Commands;

/// <summary>`engine run [PROMPT]`: generates text and streams it to stdout; statistics go to stderr.</summary>
public static class RunCommand
{
    const string Help = """
        usage: engine run [PROMPT] [--model M] [-n N] [--temperature T] [--top-k K] [--top-p P] [--min-p P]
                          [--repeat-penalty R] [--presence-penalty P] [--frequency-penalty F] [--seed S]
                          [--threads N] [--device D] [--gpu-layers N] [--ctx N] [--tokens "1 2 3"] [--stop TEXT] [--ignore-eos] [--json]
        Without --model, runs models/stories260K.gguf. --temperature 0 is greedy.
        --device: cpu (default), cuda, opencl, auto (a GPU when usable, else the CPU) or ilgpu-cpu (GPU code on the CPU, slow).
        --gpu-layers: the first N layers (and the embedding) on the device, the rest and the output on the CPU,
          for models larger than the card (default all; --device auto picks as many as fit).
        """;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, ModelArguments.Flags);
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        using var model = ModelArguments.Open(cl, required: false);
        string? text = cl.Positionals.Count switch
        {
            0 => null,
            1 => cl.Positionals[0],
            _ => throw new UsageException("give the prompt as one argument (quote it)"),
        };
        int n = cl.Int("n", 256, -1, 1 << 24, alias: "n-predict");
        bool json = cl.Has("json");
        var options = new GenerationOptions
        {
            MaxTokens = n < 0 ? null : n,
            Sampling = ModelArguments.Sampling(cl, model.Config.VocabSize),
            IgnoreEndOfGeneration = cl.Has("ignore-eos"),
            StopStrings = cl.String("stop") is { } stop ? [stop] : [],
        };
        var prompt = ModelArguments.Prompt(cl, model, text ?? (cl.String("tokens") is null ? "" : null), addSpecial: true);
        int ctx = ModelArguments.Context(cl, model, prompt.Length + Math.Max(0, n));
        cl.RejectUnknown();
        if (prompt.Length == 0) throw new UsageException("the prompt tokenizes to nothing; give a prompt");

        var session = new Session(model.Model, model.Tokenizer, ctx);
        var stdout = Console.Out;
        if (!json && text is not null) stdout.Write(text);
        var result = session.Generate(prompt, options, json ? null : piece => { stdout.Write(piece); stdout.Flush(); });
        if (json)
        {
            var payload = new { prompt_tokens = result.PromptTokens, generated_tokens = result.GeneratedTokens, text = result.Text };
            stdout.WriteLine(JsonSerializer.Serialize(payload));
        }
        else
        {
            stdout.WriteLine();
            Console.Error.WriteLine($"[{result.PromptTokens.Length} prompt tokens at {result.PromptTokensPerSecond:F1} tok/s, " +
                                    $"{result.GeneratedTokens.Length} generated at {result.GenerationTokensPerSecond:F1} tok/s, stop: {result.StopReason}]");
        }
        return 0;
    }
}
