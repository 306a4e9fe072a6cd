using System.Globalization;
using System.Text;

namespace Engine.Tokenizers;

/// <summary>Text seen one Unicode code point per char, so that .NET regular expressions (which work on UTF-16 code
/// units) match the way the reference tokenizers (Rust regex / llama.cpp, which work on code points) do.
/// Each code point outside the BMP is replaced, in <see cref="Proxy"/>, by a BMP stand-in of the same general category
/// (so \p{L}, \p{N}, \p{P}, \p{S}, \p{M}, \s still classify it right and "?" quantifiers cannot split a surrogate pair);
/// <see cref="CharStart"/> maps code point positions back to the original string.</summary>
internal sealed class CodepointText
{
    public string Proxy { get; }
    /// <summary>CharStart[i] is where code point i starts in the original text; CharStart[Count] is its length.</summary>
    public int[] CharStart { get; }
    public int Count => Proxy.Length;

    public CodepointText(string text)
    {
        var proxy = new StringBuilder(text.Length);
        var starts = new List<int>(text.Length + 1);
        for (int i = 0; i < text.Length;)
        {
            starts.Add(i);
            if (Rune.TryGetRuneAt(text, i, out var rune))
            {
                proxy.Append(rune.IsBmp ? (char)rune.Value : StandIn(Rune.GetUnicodeCategory(rune)));
                i += rune.Utf16SequenceLength;
            }
            else
            {
                proxy.Append('\uFFFD'); // a lone surrogate: UTF-8 encoding turns it into U+FFFD too
                i++;
            }
        }
        starts.Add(text.Length);
        Proxy = proxy.ToString();
        CharStart = starts.ToArray();
    }

    // Stand-ins chosen outside every explicit character range the pre-tokenizer patterns name: not ASCII, not in
    // DeepSeek's U+0800-U+9FA5 and U+AC00-U+D7FF "CJK" runs, its fullwidth and quotation-mark punctuation, nor its
    // letter list (except that supplementary cased letters stand in as Latin cased letters, which that list holds).
    static char StandIn(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter => '\u0100',
        UnicodeCategory.LowercaseLetter => '\u0101',
        UnicodeCategory.TitlecaseLetter => '\u01C5',
        UnicodeCategory.ModifierLetter => '\u02B0',
        UnicodeCategory.OtherLetter => '\u05D0',
        UnicodeCategory.NonSpacingMark => '\u0300',
        UnicodeCategory.SpacingCombiningMark => '\uA823',
        UnicodeCategory.EnclosingMark => '\u0488',
        UnicodeCategory.DecimalDigitNumber => '\u0660',
        UnicodeCategory.LetterNumber => '\uA6E6',
        UnicodeCategory.OtherNumber => '\u00B2',
        UnicodeCategory.ConnectorPunctuation => '\uFE33',
        UnicodeCategory.DashPunctuation => '\u058A',
        UnicodeCategory.OpenPunctuation => '\uFE59',
        UnicodeCategory.ClosePunctuation => '\uFE5A',
        UnicodeCategory.InitialQuotePunctuation => '\u00AB',
        UnicodeCategory.FinalQuotePunctuation => '\u00BB',
        UnicodeCategory.OtherPunctuation => '\u00A1',
        UnicodeCategory.MathSymbol => '\u00D7',
        UnicodeCategory.CurrencySymbol => '\u00A2',
        UnicodeCategory.ModifierSymbol => '\u02C2',
        UnicodeCategory.OtherSymbol => '\u00A6',
        UnicodeCategory.Format => '\u00AD',
        UnicodeCategory.PrivateUse => '\uE000',
        _ => '\u0378', // unassigned
    };
}
