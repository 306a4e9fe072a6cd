namespace Engine.Tokenizers;

/// <summary>A piece of input after special-token splitting: either a token id or a run of plain text.</summary>
internal readonly record struct Fragment(int Token, int Start, int Length)
{
    public bool IsToken => Token >= 0;
    public static Fragment Text(int start, int length) => new(-1, start, length);
}

/// <summary>Splits the input on special-token texts before the tokenizer proper runs, as llama.cpp's
/// tokenizer_st_partition does: each special token in turn, longest first, is cut out of every remaining text run.
/// Control and unknown tokens are only recognized when parsing specials, and then never inside a literal range (a
/// message's own text in a rendered chat); user-defined tokens always are.</summary>
internal static class SpecialTokenSplitter
{
    public static List<Fragment> Split(Vocab vocab, string text, bool parseSpecial, IReadOnlyList<Range>? literal = null)
    {
        var fragments = new List<Fragment>();
        if (text.Length == 0) return fragments;
        fragments.Add(Fragment.Text(0, text.Length));

        foreach (var id in vocab.SpecialTokens)
        {
            var attr = vocab.Attrs[id];
            if (!parseSpecial && (attr & (TokenAttr.Control | TokenAttr.Unknown)) != 0) continue;
            var special = vocab.Texts[id];
            if (special.Length == 0) continue;
            bool control = (attr & (TokenAttr.Control | TokenAttr.Unknown)) != 0;

            for (int i = 0; i < fragments.Count; i++)
            {
                var f = fragments[i];
                if (f.IsToken) continue;
                int at = text.IndexOf(special, f.Start, f.Length, StringComparison.Ordinal);
                while (at >= 0 && control && InLiteral(literal, text.Length, at, special.Length))
                {
                    int from = at + 1, end = f.Start + f.Length;
                    at = from + special.Length <= end ? text.IndexOf(special, from, end - from, StringComparison.Ordinal) : -1;
                }
                if (at < 0) continue;

                // Replace this run by: left text, the token, right text (the right part is searched again next).
                var replacement = new List<Fragment>(3);
                int leftLen = at - f.Start;
                if ((attr & TokenAttr.LStrip) != 0)
                    while (leftLen > 0 && IsCSpace(text[f.Start + leftLen - 1])) leftLen--;
                if (leftLen > 0) replacement.Add(Fragment.Text(f.Start, leftLen));
                replacement.Add(new Fragment(id, 0, 0));
                int rightStart = at + special.Length, rightEnd = f.Start + f.Length;
                if ((attr & TokenAttr.RStrip) != 0)
                    while (rightStart < rightEnd && IsCSpace(text[rightStart])) rightStart++;
                if (rightStart < rightEnd) replacement.Add(Fragment.Text(rightStart, rightEnd - rightStart));

                fragments.RemoveAt(i);
                fragments.InsertRange(i, replacement);
                i += replacement.Count - 1;
                if (replacement[^1].IsToken) continue;
                i--; // look at the right remainder again for further occurrences of the same token
            }
        }
        return fragments;
    }

    /// <summary>Whether [at, at + length) overlaps a literal range.</summary>
    static bool InLiteral(IReadOnlyList<Range>? literal, int textLength, int at, int length)
    {
        if (literal is null) return false;
        foreach (var range in literal)
        {
            var (start, count) = range.GetOffsetAndLength(textLength);
            if (at < start + count && start < at + length) return true;
        }
        return false;
    }

    // C isspace in the "C" locale, which llama.cpp uses for LSTRIP/RSTRIP.
    static bool IsCSpace(char c) => c is ' ' or '\t' or '\n' or '\v' or '\f' or '\r';
}
