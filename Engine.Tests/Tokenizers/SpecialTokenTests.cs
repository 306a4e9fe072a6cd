using Engine.Tokenizers;

namespace Engine.Tests.Tokenizers;

/// <summary>parse_special on SentencePiece vocabularies: control tokens are cut out of the text, the text after them
/// gets SentencePiece's space prefix again, and Phi-3's special tokens swallow the whitespace after them.</summary>
public class SpecialTokenTests
{
    const string V = VocabVectors.Dir + "/ggml-vocab-";

    [TokenizerSharedFact(V + "llama-spm.gguf")]
    public void Llama_spm_control_tokens()
    {
        var tok = VocabVectors.LoadGguf("llama-spm");
        var hello = tok.Encode("Hello", addSpecial: false, parseSpecial: false);
        hello.Should().Equal(15043);
        tok.Encode("<s>Hello</s>", addSpecial: false, parseSpecial: true).Should().Equal(1, 15043, 2);
        tok.Encode("<s>Hello", addSpecial: false, parseSpecial: false)[0].Should().NotBe(1);
        tok.Encode("Hello", addSpecial: true, parseSpecial: false).Should().Equal(1, 15043);
        tok.IsEndOfGeneration(2).Should().BeTrue();
        tok.Decode([15043, 2]).Should().Be("Hello");
    }

    [TokenizerSharedFact(V + "phi-3.gguf")]
    public void Phi3_special_tokens_strip_the_whitespace_after_them()
    {
        var tok = VocabVectors.LoadGguf("phi-3");
        int user = tok.Tokens.ToList().IndexOf("<|user|>"), end = tok.Tokens.ToList().IndexOf("<|end|>");
        user.Should().BePositive();
        var ids = tok.Encode("<|user|>\nHi<|end|>", addSpecial: false, parseSpecial: true);
        ids.Should().Equal([user, .. tok.Encode("Hi", false, false), end]);
        tok.IsEndOfGeneration(end).Should().BeTrue("<|end|> ends a Phi-3 turn");
    }
}
