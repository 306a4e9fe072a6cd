using System.Text.Json;

namespace Engine.Tests.Support;

/// <summary>llama.cpp's golden outputs for a fixture model (see ../shared/fixtures/README.md and the copies in
/// Engine.Tests/Golden): the prompt tokens, every row of logits, and the greedy continuation.</summary>
public sealed record GoldenCase(string Name, int[] Tokens, float[] Logits, int Vocab, int[] GreedyTokens, int[]? Argmax)
{
    public int Rows => Tokens.Length;
    public ReadOnlySpan<float> Row(int i) => Logits.AsSpan(i * Vocab, Vocab);

    /// <summary>The fixture golden file NAME.golden.json + NAME.logits.f32 from a folder.</summary>
    public static GoldenCase LoadFixture(string folder, string name)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, name + ".golden.json")));
        var root = json.RootElement;
        var tokens = root.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        int vocab = root.GetProperty("n_vocab").GetInt32();
        var logits = ReadFloats(Path.Combine(folder, root.GetProperty("logits_file").GetString()!));
        var greedy = root.GetProperty("greedy_tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var argmax = root.TryGetProperty("argmax", out var a) ? a.EnumerateArray().Select(e => e.GetInt32()).ToArray() : null;
        return new GoldenCase(name, tokens, logits, vocab, greedy, argmax);
    }

    /// <summary>The cases of stories260K.golden.json (three prompts, 64 greedy tokens each).</summary>
    public static IReadOnlyList<GoldenCase> LoadStories(string folder)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "stories260K.golden.json")));
        var list = new List<GoldenCase>();
        foreach (var c in json.RootElement.GetProperty("cases").EnumerateArray())
        {
            var tokens = c.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var logits = ReadFloats(Path.Combine(folder, c.GetProperty("logits_file").GetString()!));
            var greedy = c.GetProperty("greedy_tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            list.Add(new GoldenCase(c.GetProperty("prompt").GetString()!, tokens, logits, 512, greedy, null));
        }
        return list;
    }

    public static float[] ReadFloats(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var floats = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, floats, 0, floats.Length * 4);
        return floats;
    }
}

/// <summary>Comparisons used against golden logits (tolerances from ../shared/fixtures/README.md).</summary>
public static class LogitCompare
{
    public static double MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double max = 0;
        for (int i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs((double)a[i] - b[i]));
        return max;
    }

    /// <summary>sum((a-b)^2) / sum(b^2) with b the reference.</summary>
    public static double Nmse(ReadOnlySpan<float> ours, ReadOnlySpan<float> golden)
    {
        double num = 0, den = 0;
        for (int i = 0; i < ours.Length; i++) { double d = (double)ours[i] - golden[i]; num += d * d; den += (double)golden[i] * golden[i]; }
        return den == 0 ? num : num / den;
    }

    public static int Argmax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }
}
