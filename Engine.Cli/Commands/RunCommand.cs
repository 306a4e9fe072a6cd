using System.Text.Json;

namespace Engine.Cli.Commands;

/// <summary>`engine run [PROMPT]`: generates text and streams it to stdout; statistics go to stderr. A thin layer over
/// <see cref="Session.GenerateAsync(IReadOnlyList{int}, GenerateOptions?, CancellationToken)"/>.</summary>
public static class RunCommand
{
    const string Help = """
        usage: engine run [PROMPT] [--model M] [-n N] [--temperature T] [--top-k K] [--top-p P] [--min-p P]
                          [--repeat-penalty R] [--presence-penalty P] [--frequency-penalty F] [--seed S]
                          [--threads N] [--device D] [--gpu-layers N] [--ctx N] [--kv-type T] [--kv-budget S] [--parallel N] [--tokens "1 2 3"] [--stop TEXT] [--ignore-eos] [--json]
        Without --model, runs the stories260K model that comes with engine. --temperature 0 is greedy.
        --device: cpu (default), cuda, opencl, auto (a GPU when usable, else the CPU) or ilgpu-cpu (GPU code on the CPU, slow).
        --gpu-layers: the first N layers (and the embedding) on the device, the rest and the output on the CPU,
          for models larger than the card (default all; --device auto picks as many as fit).

        """ + ModelArguments.GrammarHelp + ModelArguments.ControlVectorHelp + ModelArguments.KvHelp + ModelArguments.GptqHelp;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, ModelArguments.Flags, ModelArguments.Repeatable, ModelArguments.Pairs);
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        using var model = ModelArguments.Load(cl, required: false);
        string? text = cl.Positionals.Count switch
        {
            0 => null,
            1 => cl.Positionals[0],
            _ => throw new UsageException("give the prompt as one argument (quote it)"),
        };
        int n = cl.Int("n", 256, -1, 1 << 24, alias: "n-predict");
        bool json = cl.Has("json");
        var options = ModelArguments.Generate(cl, model.Info.VocabularySize) with { MaxTokens = n < 0 ? null : n };
        // As llama.cpp's CLI: BOS as the vocabulary asks, special-token text read as those tokens.
        var prompt = ModelArguments.Prompt(cl, model.Info.VocabularySize, text ?? (cl.String("tokens") is null ? "" : null),
            t => [.. model.Tokenize(t, addSpecialTokens: true, parseSpecialTokens: true)]);
        int ctx = ModelArguments.Context(cl, model.Info.TrainedContextLength, prompt.Length + Math.Max(0, n));
        cl.RejectUnknown();
        if (prompt.Length == 0) throw new UsageException("the prompt tokenizes to nothing; give a prompt");
        if (n > 0 && prompt.Length + n > ctx)
            throw new UsageException($"the prompt has {prompt.Length} tokens and {n} more were requested, but the context holds {ctx}: lower -n or raise --ctx");

        using var session = model.CreateSession(ctx);
        var stdout = Console.Out;
        if (!json && text is not null) stdout.Write(text);
        // Consumed asynchronously from one blocking wait; the model's scheduler thread computes the steps.
        var (generated, output, last) = Generate(session, prompt, options, json ? null : stdout).GetAwaiter().GetResult();

        if (json)
        {
            var payload = new { prompt_tokens = prompt, generated_tokens = generated, text = output };
            stdout.WriteLine(JsonSerializer.Serialize(payload));
        }
        else
        {
            stdout.WriteLine();
            var t = last!.Timings!;
            Console.Error.WriteLine($"[{t.PromptTokens} prompt tokens at {t.PromptTokensPerSecond:F1} tok/s, " +
                                    $"{t.GeneratedTokens} generated at {t.GenerationTokensPerSecond:F1} tok/s, stop: {last.FinishReason}]");
        }
        return 0;
    }

    static async Task<(List<int> Generated, string Text, GeneratedToken Last)> Generate(Session session, int[] prompt, GenerateOptions options, TextWriter? stream)
    {
        var generated = new List<int>();
        var text = new System.Text.StringBuilder();
        GeneratedToken? last = null;
        await foreach (var token in session.GenerateAsync(prompt, options).ConfigureAwait(false))
        {
            if (!token.IsEndOfGeneration && token.Id >= 0) generated.Add(token.Id);
            text.Append(token.Text);
            if (stream is not null && token.Text.Length > 0) { stream.Write(token.Text); stream.Flush(); }
            last = token;
        }
        return (generated, text.ToString(), last!);
    }
}
