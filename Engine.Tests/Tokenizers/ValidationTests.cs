using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Tokenizers;

namespace Engine.Tests.Tokenizers;

/// <summary>Bad tokenizer metadata is rejected with InvalidConfig naming the key (checklist M5, M6, M7); unsupported
/// tokenizer types say what is supported. Built on small in-memory vocabularies, so no files are needed.</summary>
public class ValidationTests
{
    static GgufValue Str(string s) => new(GgufValueType.String, s);
    static GgufValue Strs(params string[] s) => new(GgufValueType.Array, s, GgufValueType.String);
    static GgufValue F32s(params float[] f) => new(GgufValueType.Array, f, GgufValueType.Float32);
    static GgufValue I32s(params int[] i) => new(GgufValueType.Array, i, GgufValueType.Int32);
    static GgufValue U32(uint v) => new(GgufValueType.UInt32, v);

    /// <summary>A tiny SentencePiece vocabulary: unk, BOS, EOS, 256 byte tokens, "▁", "a", "b", "▁a", "ab", "▁ab".</summary>
    static Dictionary<string, GgufValue> Spm()
    {
        var tokens = new List<string> { "<unk>", "<s>", "</s>" };
        var types = new List<int> { 2, 3, 3 };
        for (int b = 0; b < 256; b++) { tokens.Add($"<0x{b:X2}>"); types.Add(6); }
        foreach (var t in new[] { "\u2581", "a", "b", "\u2581a", "ab", "\u2581ab" }) { tokens.Add(t); types.Add(1); }
        var scores = tokens.Select((t, i) => i < 259 ? 0f : -(float)i).ToArray();
        scores[tokens.IndexOf("\u2581ab")] = 10; // make the long piece win
        return new()
        {
            [GgufKeys.TokenizerModel] = Str("llama"),
            [GgufKeys.Tokens] = Strs([.. tokens]),
            [GgufKeys.Scores] = F32s(scores),
            [GgufKeys.TokenTypes] = I32s([.. types]),
        };
    }

    /// <summary>A tiny byte-level BPE: the 256 byte characters, "ab", "Ġa", and merges "a b", "Ġ a".</summary>
    static Dictionary<string, GgufValue> Bpe()
    {
        var tokens = Enumerable.Range(0, 256).Select(b => ByteChar(b)).ToList();
        tokens.AddRange(["ab", "\u0120a", "<|endoftext|>"]);
        return new()
        {
            [GgufKeys.TokenizerModel] = Str("gpt2"),
            [GgufKeys.TokenizerPre] = Str("gpt-2"),
            [GgufKeys.Tokens] = Strs([.. tokens]),
            [GgufKeys.TokenTypes] = I32s([.. tokens.Select(t => t == "<|endoftext|>" ? 3 : 1)]),
            [GgufKeys.Merges] = Strs("a b", "\u0120 a"),
            [GgufKeys.BosId] = U32(258),
            [GgufKeys.EosId] = U32(258),
        };
    }

    static string ByteChar(int b) =>
        b is >= 0x21 and <= 0x7E or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF ? ((char)b).ToString()
        : ((char)(256 + Enumerable.Range(0, b).Count(x => !(x is >= 0x21 and <= 0x7E or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF)))).ToString();

    static void Rejected(Dictionary<string, GgufValue> md, string key)
    {
        var e = Assert.Throws<ModelFormatException>(() => TokenizerFactory.FromGguf(md));
        e.Kind.Should().Be(FormatErrorKind.InvalidConfig);
        e.Field.Should().Be(key);
    }

    [Fact]
    public void Small_vocabularies_work()
    {
        var spm = TokenizerFactory.FromGguf(Spm());
        spm.Encode("ab", addSpecial: true, parseSpecial: false).Should().Equal(1, 264);
        spm.Encode("ac", addSpecial: false, parseSpecial: false).Should().Equal(262, 3 + 'c');
        spm.Decode(spm.Encode("ab ac", false, false)).Should().Be("ab ac");

        var bpe = TokenizerFactory.FromGguf(Bpe());
        bpe.Encode("ab a", addSpecial: false, parseSpecial: false).Should().Equal(256, 257);
        bpe.Encode("<|endoftext|>", false, parseSpecial: true).Should().Equal(258);
        bpe.IsEndOfGeneration(258).Should().BeTrue();
        bpe.Decode(bpe.Encode("ab a!", false, false)).Should().Be("ab a!");
    }

    [Fact]
    public void M5_arrays_of_different_lengths_are_rejected()
    {
        var md = Spm();
        md[GgufKeys.Scores] = F32s(new float[10]);
        Rejected(md, GgufKeys.Scores);

        md = Spm();
        md[GgufKeys.TokenTypes] = I32s(new int[10]);
        Rejected(md, GgufKeys.TokenTypes);
    }

    [Fact]
    public void M6_special_ids_outside_the_vocabulary_are_rejected()
    {
        foreach (var key in new[] { GgufKeys.BosId, GgufKeys.EosId, GgufKeys.EotId, GgufKeys.PadId, GgufKeys.UnkId })
        {
            var md = Spm();
            md[key] = U32(265);
            Rejected(md, key);
        }
    }

    [Fact]
    public void M6_defaults_outside_the_vocabulary_are_cleared()
    {
        // A BPE vocabulary without BOS/EOS keys gets llama.cpp's default 11, which a 10-token vocabulary cannot hold.
        var tokens = Enumerable.Range(0, 9).Select(i => ((char)('a' + i)).ToString()).Append("ab").ToArray();
        var md = new Dictionary<string, GgufValue>
        {
            [GgufKeys.TokenizerModel] = Str("gpt2"),
            [GgufKeys.Tokens] = Strs(tokens),
            [GgufKeys.Merges] = Strs("a b"),
        };
        var tok = TokenizerFactory.FromGguf(md);
        tok.Bos.Should().BeNull();
        tok.Eos.Should().BeNull();
    }

    [Fact]
    public void M7_byte_tokens_must_be_exactly_0xHH()
    {
        foreach (var bad in new[] { "<0x4G>", "<0x041>", "0x41", "<0X41>", "<0x4>" })
        {
            var md = Spm();
            var tokens = (string[])md[GgufKeys.Tokens].Value;
            tokens[3 + 0x41] = bad;
            Rejected(md, GgufKeys.Tokens);
        }
    }

    [Fact]
    public void M7_merges_naming_unknown_tokens_are_rejected()
    {
        foreach (var bad in new[] { "a zz", "qq b", "ab", "", "b a" })
        {
            var md = Bpe();
            md[GgufKeys.Merges] = Strs("a b", bad);
            Rejected(md, GgufKeys.Merges);
        }
    }

    [Fact]
    public void Duplicate_token_texts_are_rejected()
    {
        var md = Spm();
        var tokens = (string[])md[GgufKeys.Tokens].Value;
        tokens[^1] = "ab";
        Rejected(md, GgufKeys.Tokens);
    }

    [Fact]
    public void Unsupported_types_list_what_is_supported()
    {
        var md = Spm();
        md[GgufKeys.TokenizerModel] = Str("bert");
        var e = Assert.Throws<ModelFormatException>(() => TokenizerFactory.FromGguf(md));
        e.Field.Should().Be(GgufKeys.TokenizerModel);
        e.Expected.Should().Contain("llama").And.Contain("gpt2");

        md = Bpe();
        md[GgufKeys.TokenizerPre] = Str("no-such-pre");
        e = Assert.Throws<ModelFormatException>(() => TokenizerFactory.FromGguf(md));
        e.Kind.Should().Be(FormatErrorKind.InvalidConfig);
        e.Field.Should().Be(GgufKeys.TokenizerPre);
        e.Expected.Should().Contain("qwen2").And.Contain("llama-bpe").And.Contain("deepseek-coder");
    }

    [Fact]
    public void Missing_and_wrongly_typed_keys_are_reported()
    {
        var md = Spm();
        md.Remove(GgufKeys.Tokens);
        Assert.Throws<ModelFormatException>(() => TokenizerFactory.FromGguf(md)).Kind.Should().Be(FormatErrorKind.MissingKey);

        md = Bpe();
        md.Remove(GgufKeys.Merges);
        Assert.Throws<ModelFormatException>(() => TokenizerFactory.FromGguf(md)).Field.Should().Be(GgufKeys.Merges);

        md = Spm();
        md[GgufKeys.Scores] = Strs("x");
        Assert.Throws<ModelFormatException>(() => TokenizerFactory.FromGguf(md)).Kind.Should().Be(FormatErrorKind.WrongMetadataType);
    }

    [Fact]
    public void Token_ids_outside_the_vocabulary_are_argument_errors()
    {
        var tok = TokenizerFactory.FromGguf(Spm());
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.TokenBytes(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.TokenBytes(tok.VocabSize));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode([0, 99999]));
    }
}
