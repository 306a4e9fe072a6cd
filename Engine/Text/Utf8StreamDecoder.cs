using System.Text;

namespace Engine.Text;

/// <summary>
/// Decodes token pieces to text as they are generated. A token can end in the middle of a UTF-8 sequence
/// (byte-fallback tokens like &lt;0xE2&gt;, or BPE tokens that split an emoji), so incomplete trailing bytes are
/// held until the next piece completes them. Invalid bytes become U+FFFD; decoding never throws.
///
/// Built on the BCL's stateful <see cref="Decoder"/>, which already implements exactly this (with the Unicode
/// "maximal subpart" replacement rule), instead of a hand-written state machine.
/// </summary>
internal sealed class Utf8StreamDecoder
{
    // A fresh UTF8Encoding with replacement (not exception) fallback and no BOM handling.
    readonly Decoder _decoder = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false).GetDecoder();
    char[] _chars = new char[64];

    /// <summary>Decodes the bytes of one token piece; returns the complete characters now available
    /// (possibly empty while a multi-byte character is still incomplete).</summary>
    public string Decode(ReadOnlySpan<byte> piece) => Run(piece, flush: false);

    /// <summary>End of stream: any incomplete trailing sequence becomes U+FFFD. The decoder is reset and can be reused.</summary>
    public string Flush() => Run([], flush: true);

    /// <summary>Drops any held bytes (e.g. when a new generation starts).</summary>
    public void Reset() => _decoder.Reset();

    string Run(ReadOnlySpan<byte> bytes, bool flush)
    {
        // GetCharCount does not change the state; GetChars then consumes the bytes (holding an incomplete tail).
        var max = _decoder.GetCharCount(bytes, flush);
        if (_chars.Length < max) _chars = new char[Math.Max(max, _chars.Length * 2)];
        var n = _decoder.GetChars(bytes, _chars, flush);
        return n == 0 ? "" : new string(_chars, 0, n);
    }
}
