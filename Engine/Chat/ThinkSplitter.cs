using System.Text;

namespace Engine.Chat;

/// <summary>Text released by <see cref="ThinkSplitter"/> for one piece: reasoning and answer, either may be empty.</summary>
internal readonly record struct ThinkChunk(string Thinking, string Answer);

/// <summary>
/// Splits streamed output of reasoning models (DeepSeek-R1, Qwen3) into a "thinking" channel — the text between
/// &lt;think&gt; and &lt;/think&gt; — and an "answer" channel, so a UI can show the reasoning apart. The tags are
/// dropped, as are the newlines right after each tag (the templates write <c>&lt;think&gt;\n…\n&lt;/think&gt;\n\n</c>).
/// A tag split over pieces is held back until it is complete.
///
/// &lt;think&gt; is recognized only before any answer text (whitespace aside) has been emitted, so an answer that
/// talks about the tag is not swallowed. When the prompt already opened the block (DeepSeek-R1's generation prompt
/// ends in <c>&lt;think&gt;\n</c>) construct with <c>startsInThinking: true</c>.
/// </summary>
internal sealed class ThinkSplitter
{
    public const string OpenTag = "<think>";
    public const string CloseTag = "</think>";

    string _held = "";
    bool _answerStarted;
    bool _skipNewlines;

    public ThinkSplitter(bool startsInThinking = false)
    {
        InThinking = startsInThinking;
        _skipNewlines = startsInThinking;
    }

    /// <summary>True while the stream is inside a think block.</summary>
    public bool InThinking { get; private set; }

    /// <summary>Feeds the next piece of decoded text.</summary>
    public ThinkChunk Push(string piece)
    {
        var thinking = new StringBuilder();
        var answer = new StringBuilder();
        var text = _held + piece;
        _held = "";

        while (text.Length > 0)
        {
            if (_skipNewlines)
            {
                text = text.TrimStart('\n');
                if (text.Length == 0) break;
                _skipNewlines = false;
            }

            var tag = InThinking ? CloseTag : (_answerStarted ? null : OpenTag);
            var index = tag is null ? -1 : text.IndexOf(tag, StringComparison.Ordinal);
            if (index >= 0)
            {
                Route(text[..index], thinking, answer);
                text = text[(index + tag!.Length)..];
                InThinking = !InThinking;
                _skipNewlines = true;
                continue;
            }

            // No complete tag: hold back a suffix that could be the start of one.
            var hold = tag is null ? 0 : PartialTagSuffix(text, tag);
            Route(text[..^hold], thinking, answer);
            _held = text[^hold..];
            break;
        }
        return new ThinkChunk(thinking.ToString(), answer.ToString());
    }

    /// <summary>End of stream: releases held text to the current channel (an unfinished tag is plain text).</summary>
    public ThinkChunk Flush()
    {
        var rest = _held;
        _held = "";
        return InThinking ? new ThinkChunk(rest, "") : new ThinkChunk("", rest);
    }

    void Route(string text, StringBuilder thinking, StringBuilder answer)
    {
        if (text.Length == 0) return;
        if (InThinking) { thinking.Append(text); return; }
        answer.Append(text);
        if (!string.IsNullOrWhiteSpace(text)) _answerStarted = true;
    }

    static int PartialTagSuffix(string text, string tag)
    {
        for (var len = Math.Min(tag.Length - 1, text.Length); len > 0; len--)
            if (text.AsSpan(text.Length - len).SequenceEqual(tag.AsSpan(0, len))) return len;
        return 0;
    }
}
