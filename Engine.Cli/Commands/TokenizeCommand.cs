namespace Engine.Cli.Commands;

/// <summary>`engine tokenize --model M --text T`: ids and pieces, as the model would see the text.</summary>
public static class TokenizeCommand
{
    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, ModelArguments.Flags);
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine("usage: engine tokenize --model M --text T [--no-bos] [--json]"); return 0; }
        var text = cl.String("text") ?? (cl.Positionals.Count == 1 ? cl.Positionals[0] : throw new UsageException("give --text"));
        bool json = cl.Has("json"), noBos = cl.Has("no-bos");
        // Only the vocabulary is needed, but opening the model validates it the same way run does.
        var path = cl.String("model", "m") ?? EntryPoint.DefaultModelPath();
        cl.RejectUnknown();
        var tokenizer = OpenTokenizer(path);
        var ids = tokenizer.Encode(text, addSpecial: !noBos, parseSpecial: true);
        if (json)
        {
            Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new { tokens = ids, pieces = ids.Select(tokenizer.PieceText).ToArray() }));
            return 0;
        }
        Console.WriteLine($"{ids.Length} tokens");
        foreach (var id in ids) Console.WriteLine($"{id,8}  {System.Text.Json.JsonSerializer.Serialize(tokenizer.PieceText(id))}");
        return 0;
    }

    /// <summary>Vocabulary-only GGUFs have no weights, so the tokenizer is read without loading a model.</summary>
    static Engine.Tokenizers.ITokenizer OpenTokenizer(string path)
    {
        if (Directory.Exists(path))
        {
            var json = Path.Combine(path, "tokenizer.json");
            if (!File.Exists(json)) throw new UsageException($"no tokenizer.json in {path}");
            return Engine.Tokenizers.TokenizerFactory.FromTokenizerJson(json);
        }
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return Engine.Tokenizers.TokenizerFactory.FromTokenizerJson(path);
        using var file = Engine.Formats.Gguf.GgufFile.Open(path);
        try { return Engine.Tokenizers.TokenizerFactory.FromGguf(file.Metadata); }
        catch (Engine.Formats.ModelFormatException e) { throw e.WithFile(path); }
    }
}
