using System.Text;
using Engine.Text;

namespace Engine.Tests.Text;

public class Utf8StreamDecoderTests
{
    [Fact]
    public void Ascii_passes_straight_through()
    {
        var d = new Utf8StreamDecoder();
        d.Decode("Hello"u8).Should().Be("Hello");
        d.Decode(" world"u8).Should().Be(" world");
        d.Flush().Should().Be("");
    }

    [Fact]
    public void Three_byte_character_split_over_byte_fallback_tokens_is_held_until_complete()
    {
        // "→" = E2 86 92, as llama's byte-fallback tokens <0xE2><0x86><0x92>.
        var d = new Utf8StreamDecoder();
        d.Decode([(byte)'a', 0xE2]).Should().Be("a");
        d.Decode([0x86]).Should().Be("");
        d.Decode([0x92, (byte)'b']).Should().Be("→b");
    }

    [Fact]
    public void Four_byte_emoji_split_into_single_bytes_comes_out_once_as_a_surrogate_pair()
    {
        var bytes = Encoding.UTF8.GetBytes("😀");
        var d = new Utf8StreamDecoder();
        var output = new StringBuilder();
        foreach (var b in bytes) output.Append(d.Decode([b]));
        output.ToString().Should().Be("😀");
        output.Length.Should().Be(2);
    }

    [Fact]
    public void Every_split_point_of_a_mixed_text_round_trips()
    {
        const string text = "Grüße, 世界! 🦙 ok";
        var bytes = Encoding.UTF8.GetBytes(text);
        for (var cut = 0; cut <= bytes.Length; cut++)
        {
            var d = new Utf8StreamDecoder();
            (d.Decode(bytes.AsSpan(0, cut)) + d.Decode(bytes.AsSpan(cut)) + d.Flush()).Should().Be(text, $"cut at {cut}");
        }
    }

    [Fact]
    public void Invalid_bytes_become_replacement_characters_without_throwing()
    {
        var d = new Utf8StreamDecoder();
        d.Decode([0xFF, (byte)'x']).Should().Be("\uFFFDx");
        d.Decode([0xC0, 0x80]).Should().Be("\uFFFD\uFFFD");        // overlong encoding of NUL
        d.Decode([0xE2, 0x86, (byte)'y']).Should().Be("\uFFFDy");  // truncated sequence then ASCII
        d.Decode([0xED, 0xA0, 0x80]).Should().Be("\uFFFD\uFFFD\uFFFD"); // encoded surrogate
        d.Decode([0x80]).Should().Be("\uFFFD");                    // stray continuation byte
    }

    [Fact]
    public void Flush_turns_a_dangling_partial_sequence_into_one_replacement_and_resets()
    {
        var d = new Utf8StreamDecoder();
        d.Decode([(byte)'z', 0xF0, 0x9F]).Should().Be("z");
        d.Flush().Should().Be("\uFFFD");
        d.Decode("ok"u8).Should().Be("ok");
    }

    [Fact]
    public void Reset_drops_held_bytes()
    {
        var d = new Utf8StreamDecoder();
        d.Decode([0xE2, 0x86]).Should().Be("");
        d.Reset();
        d.Decode("a"u8).Should().Be("a");
    }

    [Fact]
    public void Long_pieces_decode_fully()
    {
        var text = string.Concat(Enumerable.Repeat("日本語テキスト", 500));
        new Utf8StreamDecoder().Decode(Encoding.UTF8.GetBytes(text)).Should().Be(text);
    }
}
