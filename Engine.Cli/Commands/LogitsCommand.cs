using Engine.Models;

namespace Engine.Cli.Commands;

/// <summary>`engine logits`: raw float32 logits of the last position (or every position with --all), for
/// comparison with a reference such as llama.cpp.</summary>
public static class LogitsCommand
{
    const string Help = """
        usage: engine logits --model M (--text T | --tokens "1 2 3") [--all] --out FILE [--no-bos] [--device D] [--gpu-layers N]
                             [--control-vector F] [--control-vector-scaled F S] [--control-vector-layer-range A B]

        """ + ModelArguments.ControlVectorHelp + ModelArguments.GptqHelp;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, ModelArguments.Flags, ModelArguments.Repeatable, ModelArguments.Pairs);
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        var steering = ModelArguments.ControlVector(cl);
        using var model = ModelArguments.Open(cl, required: true);
        // As llama.cpp's --control-vector: on every pass of this run (the hook goes with the model).
        steering?.AddTo((points, hook) => model.Model.Hooks.Add(points, hook), model.Config.LayerCount, model.Config.EmbeddingLength);
        var text = cl.String("text");
        if (text is null && cl.String("tokens") is null) throw new UsageException("give --text or --tokens");
        bool addSpecial = !cl.Has("no-bos");
        var tokens = ModelArguments.Prompt(cl, model.Config.VocabSize, text, t => model.Tokenizer.Encode(t, addSpecial, parseSpecial: true));
        bool all = cl.Has("all");
        var output = cl.String("out") ?? throw new UsageException("--out FILE is required");
        int ctx = ModelArguments.Context(cl, model, tokens.Length);
        cl.RejectUnknown();
        if (tokens.Length == 0) throw new UsageException("no tokens to feed");

        int vocab = model.Config.VocabSize;
        var cache = model.Model.CreateCache(ctx);
        var logits = new float[(all ? tokens.Length : 1) * vocab];
        model.Model.Forward(tokens, 0, cache, logits);

        // Written to a temporary file and renamed, so an interrupted run never leaves a partial file behind.
        var full = Path.GetFullPath(output);
        var temp = full + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            using (var stream = File.Create(temp))
                stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(logits.AsSpan()));
            File.Move(temp, full, overwrite: true);
        }
        finally { if (File.Exists(temp)) File.Delete(temp); }

        int rows = all ? tokens.Length : 1;
        var last = logits.AsSpan((rows - 1) * vocab, vocab).ToArray();
        var top = Enumerable.Range(0, vocab).OrderByDescending(i => last[i]).Take(5)
            .Select(i => $"{i} {Printable(model, i)} {last[i]:F4}");
        Console.WriteLine($"tokens: {string.Join(' ', tokens)}");
        Console.WriteLine($"wrote {rows} x {vocab} float32 logits to {output}");
        Console.WriteLine($"top of last row: {string.Join(" | ", top)}");
        return 0;
    }

    static string Printable(LoadedModel model, int id)
    {
        try { return System.Text.Json.JsonSerializer.Serialize(model.Tokenizer.PieceText(id)); }
        catch (Engine.Formats.ModelFormatException) { return ""; }
    }
}
