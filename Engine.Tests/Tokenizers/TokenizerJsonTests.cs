using Engine.Tokenizers;
using Xunit.Abstractions;

namespace Engine.Tests.Tokenizers;

/// <summary>The Hugging Face tokenizer.json files against the llama.cpp vectors of the same vocabularies:
/// Llama 3 against llama-bpe, Qwen3 (same BPE as Qwen2) against qwen2 and deepseek-r1-qwen (DeepSeek-R1-Distill-Qwen
/// only adds special tokens, which the vectors never contain; its BOS 151646 would be dropped).</summary>
public class TokenizerJsonTests(ITestOutputHelper output)
{
    const string Llama3 = "models/llama3-tokenizer/tokenizer.json";
    const string Qwen3 = "models/qwen3-tokenizer/tokenizer.json";
    const string V = VocabVectors.Dir + "/ggml-vocab-";

    static readonly Lazy<ITokenizer> Llama3Tok = new(() => TokenizerFactory.FromTokenizerJson(Shared(Llama3)));
    static readonly Lazy<ITokenizer> Qwen3Tok = new(() => TokenizerFactory.FromTokenizerJson(Shared(Qwen3)));

    static string Shared(string file) => Support.TestPaths.Shared(file.Split('/'))!;

    void Run(ITokenizer tok, string vectors, int? bos = null)
    {
        var failures = VocabVectors.Check(tok, vectors, bos);
        int total = VocabVectors.Read(vectors).Count;
        output.WriteLine($"{vectors}: {total - failures.Count}/{total} passed");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        RoundTrip.Check(tok, VocabVectors.Read(vectors).Select(v => v.Text));
    }

    [TokenizerSharedFact(Llama3, V + "llama-bpe.gguf.out")]
    public void Llama3_matches_llama_bpe_vectors() => Run(Llama3Tok.Value, "llama-bpe", 128000);

    [TokenizerSharedFact(Qwen3, V + "qwen2.gguf.out")]
    public void Qwen3_matches_qwen2_vectors() => Run(Qwen3Tok.Value, "qwen2");

    [TokenizerSharedFact(Qwen3, V + "deepseek-r1-qwen.gguf.out")]
    public void Qwen3_matches_deepseek_r1_qwen_vectors() => Run(Qwen3Tok.Value, "deepseek-r1-qwen", 151646);

    [TokenizerSharedFact(Llama3)]
    public void Llama3_special_tokens_bos_and_end_of_generation()
    {
        var tok = Llama3Tok.Value;
        tok.VocabSize.Should().Be(128256);
        tok.Bos.Should().Be(128000);
        tok.Eos.Should().Be(128001);
        tok.AddBos.Should().BeTrue("llama.cpp adds BOS for the Llama 3 pre-tokenizer");
        tok.Encode("Hello world", addSpecial: true, parseSpecial: false).Should().Equal(128000, 9906, 1917);
        tok.IsEndOfGeneration(128009).Should().BeTrue("<|eot_id|>");
        tok.IsEndOfGeneration(128001).Should().BeTrue("<|end_of_text|>");
        tok.IsEndOfGeneration(9906).Should().BeFalse();
        tok.Eot.Should().Be(128009);

        var chat = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>";
        tok.Encode(chat, addSpecial: false, parseSpecial: true).Should().Equal(128006, 882, 128007, 271, 13347, 128009);
        // Without parse_special the markers are plain text.
        tok.Encode(chat, addSpecial: false, parseSpecial: false).Should().NotContain(128006);
        tok.Decode([128006, 882, 128007]).Should().Be("user", "control tokens are not rendered");
        tok.PieceText(128009).Should().Be("<|eot_id|>");
    }

    [TokenizerSharedFact(Qwen3)]
    public void Qwen3_special_tokens_and_end_of_generation()
    {
        var tok = Qwen3Tok.Value;
        tok.VocabSize.Should().Be(151669);
        tok.AddBos.Should().BeFalse();
        tok.Bos.Should().BeNull();
        tok.Eos.Should().Be(151645, "<|im_end|> per tokenizer_config.json");
        tok.IsEndOfGeneration(151645).Should().BeTrue();
        tok.IsEndOfGeneration(151643).Should().BeTrue("<|endoftext|>");
        tok.IsEndOfGeneration(151644).Should().BeFalse("<|im_start|>");

        var ids = tok.Encode("<|im_start|>user\nhello<|im_end|>", addSpecial: true, parseSpecial: true);
        ids.Should().Equal(151644, 872, 198, 14990, 151645);
        // <think> is a non-special added token: recognized even without parse_special (as llama.cpp does for user-defined tokens).
        tok.Encode("<think>x</think>", addSpecial: false, parseSpecial: false).Should().Equal(151667, 87, 151668);
        tok.Decode(tok.Encode("<think>x</think>", false, false)).Should().Be("<think>x</think>");
    }
}
