using System.Globalization;
using System.Text;

namespace Engine.Chat.Jinja;

internal enum TokenKind { Data, VariableBegin, VariableEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, End }

internal readonly record struct Token(TokenKind Kind, string Value, int Line, int Column)
{
    public bool IsName(string name) => Kind == TokenKind.Name && Value == name;
    public bool IsOp(string op) => Kind == TokenKind.Operator && Value == op;
}

/// <summary>
/// Splits template source into data and tag tokens with the whitespace rules transformers configures:
/// trim_blocks (one newline after a block or comment tag is dropped), lstrip_blocks (spaces and tabs before a block or
/// comment tag at the start of a line are dropped), '-' on a tag side strips all whitespace on that side, '+' turns
/// the block rules off, and keep_trailing_newline=False. Follows jinja2/lexer.py rule by rule.
/// </summary>
internal sealed class JinjaLexer
{
    static readonly string[] Operators =
        ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", ";"];

    readonly string _src;
    readonly List<Token> _tokens = [];
    int _pos;
    List<int>? _lineStarts;

    JinjaLexer(string source)
    {
        // jinja2 normalizes every newline sequence to "\n", then drops one trailing newline (keep_trailing_newline=False).
        source = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (source.EndsWith('\n')) source = source[..^1];
        _src = source;
    }

    public static List<Token> Tokenize(string source)
    {
        var lexer = new JinjaLexer(source);
        lexer.Run();
        return lexer._tokens;
    }

    void Run()
    {
        while (_pos < _src.Length)
        {
            int tag = FindTagStart(_pos);
            if (tag < 0) { Emit(TokenKind.Data, _src[_pos..], _pos); break; }
            var text = _src[_pos..tag];
            char kind = _src[tag + 1];
            char sign = tag + 2 < _src.Length ? _src[tag + 2] : '\0';
            int rawBodyStart = 0;
            bool isRaw = kind == '%' && IsRawBegin(tag, out rawBodyStart);
            text = StripBefore(text, sign, lineStarting: _pos == 0 || _src[_pos - 1] == '\n', isVariable: kind == '{');
            if (text.Length > 0) Emit(TokenKind.Data, text, _pos);
            int afterSign = tag + 2 + (sign is '-' or '+' ? 1 : 0);
            if (isRaw) { LexRaw(rawBodyStart); continue; }
            switch (kind)
            {
                case '#': LexComment(afterSign); break;
                case '{': LexTag(afterSign, TokenKind.VariableBegin, TokenKind.VariableEnd, "}}", tag); break;
                default: LexTag(afterSign, TokenKind.BlockBegin, TokenKind.BlockEnd, "%}", tag); break;
            }
        }
        var (line, col) = Position(_src.Length);
        _tokens.Add(new Token(TokenKind.End, "", line, col));
    }

    int FindTagStart(int from)
    {
        for (int i = from; i + 1 < _src.Length; i++)
            if (_src[i] == '{' && _src[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    /// <summary>'-' strips all whitespace; otherwise lstrip_blocks drops a line's leading blanks before a block or
    /// comment tag (never before {{ }}), when the text up to the tag on that line is only whitespace.</summary>
    static string StripBefore(string text, char sign, bool lineStarting, bool isVariable)
    {
        if (sign == '-') return text.TrimEnd();
        if (sign == '+' || isVariable) return text;
        int lineStart = text.LastIndexOf('\n') + 1;
        if (lineStart == 0 && !lineStarting) return text;
        if (lineStart == text.Length) return text;
        for (int i = lineStart; i < text.Length; i++)
            if (!char.IsWhiteSpace(text[i])) return text;
        return text[..lineStart];
    }

    bool IsRawBegin(int tag, out int bodyStart)
    {
        bodyStart = 0;
        int i = tag + 2;
        if (i < _src.Length && _src[i] is '-' or '+') i++;
        i = SkipWhitespace(i);
        if (string.CompareOrdinal(_src, i, "raw", 0, 3) != 0) return false;
        i = SkipWhitespace(i + 3);
        if (string.CompareOrdinal(_src, i, "-%}", 0, 3) == 0) { bodyStart = SkipWhitespace(i + 3); return true; }
        if (string.CompareOrdinal(_src, i, "%}", 0, 2) == 0) { bodyStart = i + 2; return true; }
        return false;
    }

    void LexRaw(int bodyStart)
    {
        for (int i = bodyStart; i + 1 < _src.Length; i++)
        {
            if (_src[i] != '{' || _src[i + 1] != '%') continue;
            int j = i + 2;
            char sign = j < _src.Length ? _src[j] : '\0';
            if (sign is '-' or '+') j++;
            j = SkipWhitespace(j);
            if (string.CompareOrdinal(_src, j, "endraw", 0, 6) != 0) continue;
            j = SkipWhitespace(j + 6);
            var body = _src[bodyStart..i];
            bool lineStarting = bodyStart == 0 || _src[bodyStart - 1] == '\n';
            body = StripBefore(body, sign, lineStarting, isVariable: false);
            if (body.Length > 0) Emit(TokenKind.Data, body, bodyStart);
            _pos = AfterBlockEnd(j, "%}", isBlock: true) ?? throw Error("missing end of raw directive", i);
            return;
        }
        throw Error("missing end of raw directive", bodyStart);
    }

    void LexComment(int from)
    {
        int end = _src.IndexOf("#}", from, StringComparison.Ordinal);
        if (end < 0) throw Error("missing end of comment tag", from);
        int start = end > from && _src[end - 1] is '-' or '+' ? end - 1 : end;
        _pos = AfterBlockEnd(start, "#}", isBlock: true)!.Value;
    }

    /// <summary>Where the text resumes after an end marker at <paramref name="i"/> ('-' strips whitespace after it,
    /// '+' keeps everything, a plain block or comment end drops one newline); null when no end marker is there. The
    /// '+' sign and the newline rule belong to block and comment tags only (<paramref name="isBlock"/>).</summary>
    int? AfterBlockEnd(int i, string marker, bool isBlock)
    {
        char sign = _src[i];
        if (sign == '-' || (sign == '+' && isBlock))
        {
            if (string.CompareOrdinal(_src, i + 1, marker, 0, 2) != 0) return null;
            int after = i + 3;
            return sign == '-' ? SkipWhitespace(after) : after;
        }
        if (string.CompareOrdinal(_src, i, marker, 0, 2) != 0) return null;
        int next = i + 2;
        if (isBlock && next < _src.Length && _src[next] == '\n') next++;
        return next;
    }

    void LexTag(int from, TokenKind begin, TokenKind end, string marker, int tagStart)
    {
        Emit(begin, "", tagStart);
        int i = from, braces = 0;
        while (true)
        {
            i = SkipWhitespace(i);
            if (i >= _src.Length) throw Error($"unexpected end of template, expected '{marker}'", tagStart);
            if (braces == 0 && AfterBlockEnd(i, marker, isBlock: end == TokenKind.BlockEnd) is int after)
            {
                Emit(end, "", i);
                _pos = after;
                return;
            }
            char c = _src[i];
            if (c is '\'' or '"') { i = LexString(i); continue; }
            if (char.IsAsciiDigit(c)) { i = LexNumber(i); continue; }
            if (char.IsLetter(c) || c == '_')
            {
                int s = i;
                while (i < _src.Length && (char.IsLetterOrDigit(_src[i]) || _src[i] == '_')) i++;
                Emit(TokenKind.Name, _src[s..i], s);
                continue;
            }
            var op = Operators.FirstOrDefault(o => string.CompareOrdinal(_src, i, o, 0, o.Length) == 0)
                     ?? throw Error($"unexpected character '{c}'", i);
            if (op is "(" or "[" or "{") braces++;
            else if (op is ")" or "]" or "}") braces--;
            Emit(TokenKind.Operator, op, i);
            i += op.Length;
        }
    }

    int LexNumber(int i)
    {
        int s = i;
        static bool Digits(string src, ref int j)
        {
            int start = j;
            while (j < src.Length && (char.IsAsciiDigit(src[j]) || (src[j] == '_' && j > start && j + 1 < src.Length && char.IsAsciiDigit(src[j + 1])))) j++;
            return j > start;
        }
        Digits(_src, ref i);
        bool isFloat = false;
        if (i + 1 < _src.Length && _src[i] == '.' && char.IsAsciiDigit(_src[i + 1])) { i++; Digits(_src, ref i); isFloat = true; }
        if (i < _src.Length && _src[i] is 'e' or 'E')
        {
            int j = i + 1;
            if (j < _src.Length && _src[j] is '+' or '-') j++;
            if (Digits(_src, ref j)) { i = j; isFloat = true; }
        }
        Emit(isFloat ? TokenKind.Float : TokenKind.Integer, _src[s..i].Replace("_", ""), s);
        return i;
    }

    /// <summary>A quoted string with Python's unicode-escape rules (jinja2 decodes literals that way); an unknown
    /// escape keeps its backslash.</summary>
    int LexString(int i)
    {
        char quote = _src[i];
        int s = i++;
        var sb = new StringBuilder();
        while (true)
        {
            if (i >= _src.Length) throw Error("unterminated string", s);
            char c = _src[i++];
            if (c == quote) break;
            if (c != '\\') { sb.Append(c); continue; }
            if (i >= _src.Length) throw Error("unterminated string", s);
            char e = _src[i++];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case '\n': break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case 'x': i = AppendHex(sb, i, 2, s); break;
                case 'u': i = AppendHex(sb, i, 4, s); break;
                case 'U': i = AppendHex(sb, i, 8, s); break;
                case >= '0' and <= '7':
                    int v = e - '0', n = 1;
                    while (n < 3 && i < _src.Length && _src[i] is >= '0' and <= '7') { v = v * 8 + (_src[i++] - '0'); n++; }
                    sb.Append((char)v);
                    break;
                default: sb.Append('\\').Append(e); break;
            }
        }
        Emit(TokenKind.String, sb.ToString(), s);
        return i;
    }

    int AppendHex(StringBuilder sb, int i, int digits, int stringStart)
    {
        if (i + digits > _src.Length || !int.TryParse(_src.AsSpan(i, digits), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int cp)
            || cp > 0x10FFFF)
            throw Error("invalid escape in string", stringStart);
        sb.Append(char.ConvertFromUtf32(cp is >= 0xD800 and <= 0xDFFF ? 0xFFFD : cp));
        return i + digits;
    }

    int SkipWhitespace(int i)
    {
        while (i < _src.Length && char.IsWhiteSpace(_src[i])) i++;
        return i;
    }

    void Emit(TokenKind kind, string value, int offset)
    {
        var (line, col) = Position(offset);
        _tokens.Add(new Token(kind, value, line, col));
    }

    (int Line, int Column) Position(int offset)
    {
        if (_lineStarts is null)
        {
            _lineStarts = [0];
            for (int i = 0; i < _src.Length; i++)
                if (_src[i] == '\n') _lineStarts.Add(i + 1);
        }
        int index = _lineStarts.BinarySearch(offset);
        if (index < 0) index = ~index - 1;
        return (index + 1, offset - _lineStarts[index] + 1);
    }

    JinjaTemplateException Error(string message, int offset)
    {
        var (line, col) = Position(offset);
        return JinjaTemplateException.At(message, line, col);
    }
}
