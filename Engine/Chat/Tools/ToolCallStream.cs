using System.Text;

namespace Engine.Chat.Tools;

/// <summary>
/// Sits between a streamed answer and its reader when tools are offered: text is passed on until the reply may be
/// turning into tool calls (a start marker, or a prefix of one at the end of what has arrived, or a bare call at the
/// very start for the families that write one), and held from there. At the end the held text is parsed: calls come
/// out as calls, and anything that did not parse is released as text, so nothing the model wrote is lost.
/// </summary>
internal sealed class ToolCallStream(ToolCallFormat format)
{
    readonly StringBuilder _reply = new();
    int _released;   // characters of _reply passed on as answer text
    bool _holding;   // a call has started: nothing more is released until the end

    /// <summary>Feeds the next piece of answer text; returns what may be shown now.</summary>
    public string Push(string piece)
    {
        _reply.Append(piece);
        if (_holding) return "";
        var text = _reply.ToString();
        var trimmed = text.TrimStart();
        if (_released == 0 && trimmed.Length == 0) return ""; // only whitespace yet: a bare call may follow
        if (_released == 0 && trimmed.Length > 0 && format.MayStartBare(trimmed))
        {
            _holding = true;
            return "";
        }
        int safe = text.Length;
        foreach (var marker in format.StartMarkers)
        {
            int at = text.IndexOf(marker, _released, StringComparison.Ordinal);
            if (at >= 0) { safe = Math.Min(safe, at); _holding = true; }
            else safe = Math.Min(safe, text.Length - PartialMarkerAtEnd(text, marker));
        }
        // Whitespace at the end waits for what follows: before a call it is dropped, as the parsed content is trimmed.
        while (safe > _released && char.IsWhiteSpace(text[safe - 1])) safe--;
        if (safe <= _released) return "";
        var release = text[_released..safe];
        _released = safe;
        return release;
    }

    /// <summary>The end of the reply: its calls, and the text not yet released (the text before the calls, trimmed, or
    /// the whole held text when no call parsed).</summary>
    public (string Text, IReadOnlyList<ParsedToolCall> Calls) Finish()
    {
        var reply = _reply.ToString();
        var parsed = format.Parse(reply);
        if (parsed.Calls.Count == 0) return (reply[_released..], []);
        // The calls' own text is never released; content before them that was held (a partial marker) still is.
        var content = parsed.Content;
        var unreleased = content.Length > _released ? content[_released..] : "";
        return (unreleased, parsed.Calls);
    }

    /// <summary>How many characters at the end of <paramref name="text"/> could begin <paramref name="marker"/>.</summary>
    static int PartialMarkerAtEnd(string text, string marker)
    {
        for (int length = Math.Min(marker.Length - 1, text.Length); length > 0; length--)
            if (string.CompareOrdinal(text, text.Length - length, marker, 0, length) == 0) return length;
        return 0;
    }
}
