namespace Engine.Sampling;

/// <summary>What <see cref="StopStrings.Push"/> decided for one piece of streamed text.</summary>
/// <param name="Emit">Text that is safe to show now (never part of a stop string).</param>
/// <param name="Stopped">A stop string was completed; generation should end. <paramref name="Emit"/> holds the
/// text before it; the stop string itself is never emitted.</param>
/// <param name="MatchedStop">The stop string that matched, when <paramref name="Stopped"/>.</param>
internal readonly record struct StopResult(string Emit, bool Stopped, string? MatchedStop);

/// <summary>
/// Streaming stop-string matcher. A stop string may arrive split over several tokens ("&lt;|e" + "nd|&gt;"), so text
/// that could be the beginning of a stop string is held back until the next piece settles it; everything else is
/// released at once. Matching is ordinal (exact UTF-16 code units).
/// </summary>
internal sealed class StopStrings
{
    /// <summary>At most this many stop strings per request (OpenAI allows 4; we are more generous).</summary>
    public const int MaxCount = 16;

    /// <summary>At most this many UTF-16 code units per stop string.</summary>
    public const int MaxLength = 256;

    readonly string[] _stops;
    string _held = "";
    bool _stopped;

    /// <summary>Validates the list (checklist R10): empty strings are ignored; too many or too long ⇒ error.</summary>
    /// <exception cref="InvalidSamplingOptionsException">More than <see cref="MaxCount"/> strings or one longer than <see cref="MaxLength"/>.</exception>
    /// <param name="stops">The stop strings.</param>
    /// <param name="extra">Stops added by the engine itself (a chat template's end-of-turn markers), not counted against
    /// the caller's limit.</param>
    public StopStrings(IEnumerable<string?>? stops, IEnumerable<string>? extra = null)
    {
        var list = new List<string>();
        foreach (var s in stops ?? [])
        {
            if (string.IsNullOrEmpty(s)) continue;
            if (s.Length > MaxLength)
                throw new InvalidSamplingOptionsException($"stop string of length {s.Length} exceeds the limit of {MaxLength}", "stop");
            if (!list.Contains(s, StringComparer.Ordinal)) list.Add(s);
        }
        if (list.Count > MaxCount)
            throw new InvalidSamplingOptionsException($"{list.Count} stop strings exceed the limit of {MaxCount}", "stop");
        foreach (var s in extra ?? [])
            if (s.Length > 0 && !list.Contains(s, StringComparer.Ordinal)) list.Add(s);
        _stops = [.. list];
    }

    /// <summary>The effective stop strings (empty and duplicate entries removed).</summary>
    public IReadOnlyList<string> Strings => _stops;

    /// <summary>True once a stop string has matched.</summary>
    public bool Stopped => _stopped;

    /// <summary>Feeds the next piece of decoded text.</summary>
    /// <exception cref="InvalidOperationException">Called again after a stop string matched.</exception>
    public StopResult Push(string piece)
    {
        if (_stopped) throw new InvalidOperationException("a stop string already matched; the stream is finished");
        var text = _held + piece;

        // Earliest match wins: the text before it is what the user would have seen first.
        var bestIndex = -1;
        string? bestStop = null;
        foreach (var stop in _stops)
        {
            var index = text.IndexOf(stop, StringComparison.Ordinal);
            if (index >= 0 && (bestIndex < 0 || index < bestIndex)) { bestIndex = index; bestStop = stop; }
        }
        if (bestStop is not null)
        {
            _stopped = true;
            _held = "";
            return new StopResult(text[..bestIndex], true, bestStop);
        }

        var hold = LongestPartialStopSuffix(text);
        // Never split a surrogate pair between what is emitted and what is held.
        if (hold < text.Length && char.IsHighSurrogate(text[text.Length - hold - 1])) hold++;
        _held = text[^hold..];
        return new StopResult(text[..^hold], false, null);
    }

    /// <summary>End of generation without a stop: releases whatever was held back.</summary>
    public string Flush()
    {
        var rest = _held;
        _held = "";
        return rest;
    }

    /// <summary>Length of the longest suffix of <paramref name="text"/> that is a proper prefix of some stop string.</summary>
    int LongestPartialStopSuffix(string text)
    {
        var best = 0;
        foreach (var stop in _stops)
        {
            for (var len = Math.Min(stop.Length - 1, text.Length); len > best; len--)
            {
                if (text.AsSpan(text.Length - len).SequenceEqual(stop.AsSpan(0, len))) { best = len; break; }
            }
        }
        return best;
    }
}
