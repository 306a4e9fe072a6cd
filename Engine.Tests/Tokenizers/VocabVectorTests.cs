using Engine.Tokenizers;
using Xunit.Abstractions;

namespace Engine.Tests.Tokenizers;

/// <summary>Every vocabulary of llama.cpp's tokenizer test suite that has both a GGUF and vectors here: all strings
/// must tokenize to the expected ids, and decode back to the input where llama.cpp's detokenizer would.</summary>
public class VocabVectorTests(ITestOutputHelper output)
{
    const string V = VocabVectors.Dir + "/ggml-vocab-";

    void Run(string name)
    {
        var tok = VocabVectors.LoadGguf(name);
        var failures = VocabVectors.Check(tok, name);
        int total = VocabVectors.Read(name).Count;
        output.WriteLine($"{name}: {total - failures.Count}/{total} passed");
        foreach (var f in failures) output.WriteLine(f);
        Assert.True(failures.Count == 0, $"{name}: {failures.Count} of {total} failed:\n" + string.Join("\n", failures));
        RoundTrip.Check(tok, VocabVectors.Read(name).Select(v => v.Text));
    }

    [TokenizerSharedFact(V + "llama-spm.gguf")] public void LlamaSpm() => Run("llama-spm");
    [TokenizerSharedFact(V + "phi-3.gguf")] public void Phi3() => Run("phi-3");
    [TokenizerSharedFact(V + "llama-bpe.gguf")] public void LlamaBpe() => Run("llama-bpe");
    [TokenizerSharedFact(V + "qwen2.gguf")] public void Qwen2() => Run("qwen2");
    [TokenizerSharedFact(V + "deepseek-r1-qwen.gguf")] public void DeepseekR1Qwen() => Run("deepseek-r1-qwen");
    [TokenizerSharedFact(V + "deepseek-llm.gguf")] public void DeepseekLlm() => Run("deepseek-llm");
    [TokenizerSharedFact(V + "deepseek-coder.gguf")] public void DeepseekCoder() => Run("deepseek-coder");
    [TokenizerSharedFact(V + "falcon.gguf")] public void Falcon() => Run("falcon");
    [TokenizerSharedFact(V + "gpt-2.gguf")] public void Gpt2() => Run("gpt-2");
    [TokenizerSharedFact(V + "mpt.gguf")] public void Mpt() => Run("mpt");
    [TokenizerSharedFact(V + "refact.gguf")] public void Refact() => Run("refact");
    [TokenizerSharedFact(V + "starcoder.gguf")] public void Starcoder() => Run("starcoder");

    [Fact(Skip = "bert-bge is a WordPiece (WPM) vocabulary; only SentencePiece and byte-level BPE are supported")]
    public void BertBge() { }

    [Fact(Skip = "ggml-vocab-command-r.gguf is not in ../shared (vectors only)")] public void CommandR() { }
    [Fact(Skip = "ggml-vocab-chameleon.gguf is not in ../shared (vectors only)")] public void Chameleon() { }
    [Fact(Skip = "ggml-vocab-roberta-bpe.gguf is not in ../shared (vectors only)")] public void RobertaBpe() { }
}

/// <summary>Decode(Encode(s)) == s, where llama.cpp's detokenizer gives the input back: vocabularies with
/// clean_up_tokenization_spaces drop the space before punctuation, so those strings are compared after the same cleanup.</summary>
internal static class RoundTrip
{
    public static void Check(ITokenizer tok, IEnumerable<string> texts)
    {
        var bad = new List<string>();
        foreach (var text in texts)
        {
            var back = tok.Decode(tok.Encode(text, addSpecial: false, parseSpecial: false));
            if (back != text && back != CleanedUp(text)) bad.Add($"{System.Text.Json.JsonSerializer.Serialize(text)} -> {System.Text.Json.JsonSerializer.Serialize(back)}");
        }
        Assert.True(bad.Count == 0, "round trip failed:\n" + string.Join("\n", bad));
    }

    static string CleanedUp(string s) => s.Replace(" ?", "?").Replace(" !", "!").Replace(" .", ".").Replace(" ,", ",")
        .Replace(" 's", "'s").Replace(" 'm", "'m").Replace(" 're", "'re").Replace(" 've", "'ve");
}
