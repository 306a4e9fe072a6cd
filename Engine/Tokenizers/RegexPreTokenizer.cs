using System.Text.RegularExpressions;

namespace Engine.Tokenizers;

/// <summary>Splits text into the words BPE runs on, with a sequence of patterns applied one after the other (as
/// llama.cpp's unicode_regex_split and Hugging Face's Sequence of Split(Isolated) do): each pattern cuts every piece left
/// by the previous one into its matches and the unmatched runs between them, all kept.
/// Patterns run on <see cref="CodepointText.Proxy"/>, one char per code point.</summary>
internal sealed class RegexPreTokenizer
{
    readonly Regex[] _patterns;

    public RegexPreTokenizer(IEnumerable<string> patterns)
    {
        // Compiled: these run over every prompt; CultureInvariant: classes must not depend on the machine's culture.
        _patterns = patterns.Select(p => new Regex(p, RegexOptions.Compiled | RegexOptions.CultureInvariant)).ToArray();
    }

    /// <summary>The words of <paramref name="text"/>, in order, as substrings of it.</summary>
    public List<string> Split(string text)
    {
        var words = new List<string>();
        if (text.Length == 0) return words;
        var cps = new CodepointText(text);
        var pieces = new List<(int Start, int Length)> { (0, cps.Count) };
        foreach (var pattern in _patterns)
        {
            var next = new List<(int, int)>(pieces.Count * 2);
            foreach (var (start, length) in pieces)
            {
                // Each piece is matched on its own, so anchors and look-arounds see the piece's ends as the text's ends.
                var piece = start == 0 && length == cps.Count ? cps.Proxy : cps.Proxy.Substring(start, length);
                int done = 0;
                for (var m = pattern.Match(piece); m.Success; m = m.NextMatch())
                {
                    if (m.Length == 0) continue;
                    if (m.Index > done) next.Add((start + done, m.Index - done));
                    next.Add((start + m.Index, m.Length));
                    done = m.Index + m.Length;
                }
                if (done < length) next.Add((start + done, length - done));
            }
            pieces = next;
        }
        foreach (var (start, length) in pieces)
        {
            int from = cps.CharStart[start], to = cps.CharStart[start + length];
            words.Add(text.Substring(from, to - from));
        }
        return words;
    }
}
