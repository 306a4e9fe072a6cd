using Engine.Convert.Gguf;
using Engine.Formats.Gguf;
using Engine.Tests.Support;

namespace Engine.Tests.Convert;

public class TokenizerMetadataTests
{
    static string FixtureVocab => TestPaths.Repo("Engine.Tests", "Fixtures", "fx-qwen3-F32.gguf");

    [Fact]
    public void A_smaller_vocabulary_is_padded_like_llama_cpp_converter_pads_it()
    {
        var tokenizer = TokenizerMetadata.Load(FixtureVocab, rows: 600);
        tokenizer.OriginalTokenCount.Should().Be(512);
        tokenizer.TokenCount.Should().Be(600);
        var entries = tokenizer.Entries.ToDictionary(e => e.Key, e => e.Value.Value);
        entries.Keys.Should().OnlyContain(k => k.StartsWith("tokenizer."));
        var tokens = (string[])entries[GgufKeys.Tokens];
        tokens.Should().HaveCount(600);
        tokens[512].Should().Be("[PAD512]");
        ((int[])entries[GgufKeys.TokenTypes])[599].Should().Be(5, "UNUSED");
        ((float[])entries[GgufKeys.Scores])[599].Should().Be(-1000f);
    }

    [Fact]
    public void A_vocabulary_larger_than_the_embedding_is_refused()
    {
        var act = () => TokenizerMetadata.Load(FixtureVocab, rows: 100);
        act.Should().Throw<Engine.Convert.ConvertException>().WithMessage("*512 tokens*100*");
    }
}
