using System.Diagnostics;
using System.Text;
using Engine.Formats.Gguf;
using Engine.Tests.Support;
using Engine.Tokenizers;

namespace Engine.Tests.Tokenizers;

/// <summary>Encoding 10 KB of mixed text finishes within 2 s (best of three texts, after a warm-up run). It takes a
/// few milliseconds on a quiet machine; the bound only catches runaway (quadratic) merging and stays green on a
/// loaded CI box. Speed itself is measured in Perf/ (TokenizerBenchmarks), not asserted here.</summary>
public class SpeedTests(Xunit.Abstractions.ITestOutputHelper output)
{
    static string TenKilobytes(int seed)
    {
        var rng = new Random(seed);
        var sb = new StringBuilder();
        string[] extras = ["Hello, world!", " нещо на Български", " 我想在apple工作", " 🦙.cpp", "\n\n", "    ", " 3.14159", " y'all"];
        while (sb.Length < 10_000)
        {
            // Random lowercase words (defeating the word cache) mixed with multilingual and whitespace pieces.
            sb.Append(' ');
            int len = rng.Next(1, 10);
            for (int i = 0; i < len; i++) sb.Append((char)('a' + rng.Next(26)));
            if (rng.Next(6) == 0) sb.Append(extras[rng.Next(extras.Length)]);
        }
        return sb.ToString();
    }

    double BestMs(ITokenizer tok)
    {
        tok.Encode(TenKilobytes(0), true, true); // warm-up (JIT); each timed run gets fresh words, so the word cache cannot help
        double best = double.MaxValue;
        string text = "";
        for (int i = 1; i <= 3; i++)
        {
            text = TenKilobytes(i);
            var sw = Stopwatch.StartNew();
            tok.Encode(text, true, true);
            best = Math.Min(best, sw.Elapsed.TotalMilliseconds);
        }
        output.WriteLine($"{text.Length} chars: best {best:F1} ms");
        return best;
    }

    static ITokenizer Gguf(params string[] parts)
    {
        using var f = GgufFile.Open(TestPaths.Shared(parts)!);
        return TokenizerFactory.FromGguf(f.Metadata);
    }

    [TokenizerSharedFact("models/ggml-vocab/ggml-vocab-gpt-2.gguf")]
    public void Byte_level_bpe_encodes_10KB_without_runaway_cost() =>
        BestMs(Gguf("models", "ggml-vocab", "ggml-vocab-gpt-2.gguf")).Should().BeLessThan(2000);

    [TokenizerSharedFact("models/ggml-vocab/ggml-vocab-llama-spm.gguf")]
    public void SentencePiece_encodes_10KB_without_runaway_cost() =>
        BestMs(Gguf("models", "ggml-vocab", "ggml-vocab-llama-spm.gguf")).Should().BeLessThan(2000);
}
