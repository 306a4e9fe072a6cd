using Engine.Formats.Gguf;
using Engine.Tests.Support;
using Engine.Tokenizers;

namespace Engine.Tests.Tokenizers;

/// <summary>llama.cpp's tokenizer test vectors (models/ggml-vocab-NAME.gguf.inp / .out) and how its test runs them:
/// strings separated by "\n__ggml_vocab_test__\n", one line of ids per string, tokenized with add_special = false and
/// parse_special = false (tests/test-tokenizer-0.cpp).</summary>
internal static class VocabVectors
{
    public const string Dir = "models/ggml-vocab";

    public static string Path(string file) => TestPaths.Shared([.. Dir.Split('/'), file])
        ?? throw new InvalidOperationException($"../shared/{Dir}/{file} is missing");

    public static List<(string Text, int[] Ids)> Read(string vocabName)
    {
        var inp = File.ReadAllText(Path($"ggml-vocab-{vocabName}.gguf.inp"));
        var outLines = File.ReadAllLines(Path($"ggml-vocab-{vocabName}.gguf.out"));
        // The same split as test-tokenizer-0.cpp: a separator at the very end does not start another string.
        const string sep = "\n__ggml_vocab_test__\n";
        var texts = new List<string>();
        for (int pos = 0; pos < inp.Length;)
        {
            int next = inp.IndexOf(sep, pos, StringComparison.Ordinal);
            if (next < 0) { texts.Add(inp[pos..]); break; }
            texts.Add(inp[pos..next]);
            pos = next + sep.Length;
        }
        Assert.Equal(outLines.Length, texts.Count);
        return texts.Select((t, i) => (t, outLines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray())).ToList();
    }

    public static ITokenizer LoadGguf(string vocabName)
    {
        using var f = GgufFile.Open(Path($"ggml-vocab-{vocabName}.gguf"));
        return TokenizerFactory.FromGguf(f.Metadata);
    }

    /// <summary>Runs every vector; returns the failures as readable lines (empty when all pass).</summary>
    public static List<string> Check(ITokenizer tok, string vectorsName, int? dropLeadingBos = null)
    {
        var failures = new List<string>();
        foreach (var (text, expectedRaw) in Read(vectorsName))
        {
            var expected = dropLeadingBos is int bos && expectedRaw.Length > 0 && expectedRaw[0] == bos ? expectedRaw[1..] : expectedRaw;
            var got = tok.Encode(text, addSpecial: false, parseSpecial: false);
            if (!got.SequenceEqual(expected))
                failures.Add($"{System.Text.Json.JsonSerializer.Serialize(text)}: expected [{string.Join(' ', expected)}] got [{string.Join(' ', got)}]");
        }
        return failures;
    }
}
