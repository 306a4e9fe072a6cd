using System.Text.Json;
using Engine.Formats.Gguf;
using Engine.Tests.Support;
using Engine.Tokenizers;

namespace Engine.Tests.Tokenizers;

/// <summary>The 512-token SentencePiece vocabulary of stories260K (byte fallback, add_space_prefix): prompts must
/// tokenize to the ids llama.cpp fed the model when it made the golden files.</summary>
public class Stories260KTests
{
    const string Model = "models/stories260K/stories260K.gguf";

    static ITokenizer Load()
    {
        using var f = GgufFile.Open(TestPaths.Shared(Model.Split('/'))!);
        return TokenizerFactory.FromGguf(f.Metadata);
    }

    [TokenizerSharedFact(Model, "fixtures/stories260K.golden.json")]
    public void Golden_prompts_tokenize_like_llama_cpp()
    {
        var tok = Load();
        using var golden = JsonDocument.Parse(File.ReadAllText(TestPaths.Shared("fixtures", "stories260K.golden.json")!));
        int cases = 0;
        foreach (var c in golden.RootElement.GetProperty("cases").EnumerateArray())
        {
            var prompt = c.GetProperty("prompt").GetString()!;
            var expected = c.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            tok.Encode(prompt, addSpecial: true, parseSpecial: false).Should().Equal(expected, prompt);
            cases++;
        }
        cases.Should().Be(3);
        tok.Encode("Once upon a time", addSpecial: true, parseSpecial: false).Should().Equal(1, 403, 407, 261, 378);
    }

    [TokenizerSharedFact(Model, "fixtures/fx-llama-F32.golden.json")]
    public void Fixture_prompt_tokenizes_like_llama_cpp()
    {
        // The fixtures' 24 ids are BOS + this text (found by decoding them; the README abbreviates it).
        const string text = "Once upon a time, there was a little cat who liked to play in the gard";
        using var golden = JsonDocument.Parse(File.ReadAllText(TestPaths.Shared("fixtures", "fx-llama-F32.golden.json")!));
        var expected = golden.RootElement.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var tok = Load();
        tok.Encode(text, addSpecial: true, parseSpecial: false).Should().Equal(expected);
        tok.Decode(expected[1..]).Should().Be(text);
    }

    [TokenizerSharedFact(Model)]
    public void Vocabulary_and_pieces()
    {
        var tok = Load();
        tok.VocabSize.Should().Be(512);
        tok.Bos.Should().Be(1);
        tok.Eos.Should().Be(2);
        tok.Unk.Should().Be(0);
        tok.AddBos.Should().BeTrue();
        tok.Pad.Should().BeNull("0xFFFFFFFF means no padding token");
        tok.IsEndOfGeneration(2).Should().BeTrue();
        tok.TokenBytes(403).Should().Equal(" Once"u8.ToArray(), "SentencePiece ▁ is a space");
        tok.TokenBytes(13).Should().Equal((byte)'\n');   // <0x0A>
        tok.TokenBytes(1).Should().BeEmpty("control tokens render only when asked");
        tok.TokenBytes(1, special: true).Should().Equal("<s>"u8.ToArray());
        tok.Tokens[403].Should().Be("\u2581Once");
        // Characters outside the 512 tokens fall back to their UTF-8 bytes, and come back intact.
        var ids = tok.Encode("Zoë 😀", addSpecial: false, parseSpecial: false);
        tok.Decode(ids).Should().Be("Zoë 😀");
        tok.Encode("", addSpecial: true, parseSpecial: false).Should().Equal(1);
        tok.Encode("", addSpecial: false, parseSpecial: false).Should().BeEmpty();
    }
}
