namespace Engine.Cli.Commands;

/// <summary>`engine trace`: runs a text through the model and saves the intermediates at the hook points asked for, for
/// numpy (.npz) or torch (.safetensors): <see cref="Model.RunWithCacheAsync"/> on the command line.</summary>
public static class TraceCommand
{
    const string Help = """
        usage: engine trace --model M (--text T | --tokens "1 2 3") --hooks PATTERN --out run.npz|run.safetensors
                            [--no-bos] [--threads N] [--device D] [--gpu-layers N] [--no-repack]
        PATTERN: comma-separated hook points with * wildcards and an optional .LAYER, e.g. l_out,kq_soft_max or
        blocks.*.hook_resid_post (TransformerLens names). Arrays are named NAME.LAYER (l_out.3), or NAME outside the
        blocks (inp_embd), shaped [tokens, width], or [heads, tokens, tokens] for attention scores and patterns; the token
        ids are saved as "tokens" and every position's logits as "logits".
        """;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, ModelArguments.Flags);
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        var hooks = cl.String("hooks") ?? throw new UsageException("--hooks PATTERN is required (e.g. --hooks l_out,kq_soft_max)");
        var output = cl.String("out", "o") ?? throw new UsageException("--out FILE is required (.npz or .safetensors)");
        var extension = Path.GetExtension(output).ToLowerInvariant();
        if (extension is not (".npz" or ".safetensors")) throw new UsageException($"--out {output}: save as .npz (numpy) or .safetensors");
        var text = cl.String("text");
        if (text is null && cl.String("tokens") is null) throw new UsageException("give --text or --tokens");
        bool addSpecial = !cl.Has("no-bos");
        using var model = ModelArguments.Load(cl, required: true);
        var tokens = ModelArguments.Prompt(cl, model.Info.VocabularySize, text, t => [.. model.Tokenize(t, addSpecial, parseSpecialTokens: true)]);
        cl.RejectUnknown();
        if (tokens.Length == 0) throw new UsageException("no tokens to run");
        if (tokens.Length > model.Info.ContextLength)
            throw new UsageException($"{tokens.Length} tokens are more than the context of {model.Info.ContextLength}: pass --ctx {tokens.Length} or a shorter text");

        var cache = model.RunWithCacheAsync([tokens], hooks).GetAwaiter().GetResult()[0];
        cache.Save(output);
        Console.WriteLine($"tokens: {string.Join(' ', tokens)}");
        foreach (var (name, activation) in cache.OrderBy(p => p.Key, StringComparer.Ordinal))
            Console.WriteLine($"{name} [{string.Join(", ", activation.Shape)}]");
        Console.WriteLine($"wrote {cache.Count} arrays, tokens and logits to {output}");
        return 0;
    }
}
