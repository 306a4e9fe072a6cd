using System.Globalization;

namespace Engine.Grammar;

/// <summary>
/// Parses GBNF text exactly as llama.cpp's llama_grammar_parser does (src/llama-grammar.cpp, MIT): rules
/// <c>name ::= ...</c>, alternatives, groups, string literals and character classes with the same escapes, <c>.</c>,
/// and the repetition operators rewritten into generated rules the same way (S* → S' ::= S S' |, S{m,n} → m copies and
/// n-m nested optional rules). Token references (<c>&lt;[id]&gt;</c>, <c>&lt;token&gt;</c>) are refused. Errors carry the
/// line and column. Limits keep a hostile grammar from exhausting memory.
/// </summary>
internal sealed class GbnfParser
{
    /// <summary>llama.cpp's MAX_REPETITION_THRESHOLD.</summary>
    public const int MaxRepetitionThreshold = 2000;
    public const int MaxTextLength = 4 << 20;
    public const int MaxElements = 2_000_000;
    public const int MaxRules = 200_000;
    public const int MaxNesting = 256;

    readonly string _src;
    readonly Dictionary<string, int> _symbolIds = new(StringComparer.Ordinal);
    readonly List<string> _names = [];
    readonly List<List<GrammarElement>?> _rules = [];
    readonly Dictionary<int, int> _firstUse = []; // rule id -> source index of its first reference (for errors)
    int _elements;
    int _depth;

    GbnfParser(string src) => _src = src;

    public static Grammar Parse(string text, string root = "root")
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length > MaxTextLength) throw new GrammarException($"grammar is {text.Length} characters; at most {MaxTextLength} are accepted");
        var p = new GbnfParser(text);
        p.ParseAll();
        return p.Build(root);
    }

    char At(int i) => i < _src.Length ? _src[i] : '\0';

    GrammarException Error(int index, string message)
    {
        int line = 1, col = 1;
        for (int i = 0; i < index && i < _src.Length; i++)
        {
            if (_src[i] == '\n') { line++; col = 1; }
            else col++;
        }
        return new GrammarException(message, line, col);
    }

    int SymbolId(string name, int at)
    {
        if (!_symbolIds.TryGetValue(name, out var id))
        {
            id = _names.Count;
            if (id >= MaxRules) throw Error(at, $"more than {MaxRules} rules");
            _symbolIds[name] = id;
            _names.Add(name);
            _firstUse[id] = at;
        }
        return id;
    }

    int GenerateSymbolId(string baseName, int at)
    {
        int id = _names.Count;
        if (id >= MaxRules) throw Error(at, $"more than {MaxRules} rules (repetitions and groups generate rules)");
        var name = baseName + "_" + id.ToString(CultureInfo.InvariantCulture);
        _symbolIds[name] = id;
        _names.Add(name);
        return id;
    }

    void AddRule(int id, List<GrammarElement> rule, int at)
    {
        while (_rules.Count <= id) _rules.Add(null);
        _rules[id] = rule;
        _elements += rule.Count;
        if (_elements > MaxElements) throw Error(at, $"grammar expands to more than {MaxElements} elements");
    }

    static bool IsWordChar(char c) => c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or '-' or >= '0' and <= '9';
    static bool IsDigit(char c) => c is >= '0' and <= '9';

    int ParseSpace(int pos, bool newlineOk)
    {
        while (true)
        {
            char c = At(pos);
            if (c == '#')
            {
                while (pos < _src.Length && _src[pos] != '\r' && _src[pos] != '\n') pos++;
            }
            else if (c == ' ' || c == '\t' || (newlineOk && (c == '\r' || c == '\n'))) pos++;
            else return pos;
        }
    }

    int ParseName(int pos)
    {
        int start = pos;
        while (IsWordChar(At(pos))) pos++;
        if (pos == start) throw Error(pos, $"expecting a rule name, found {Describe(pos)}");
        return pos;
    }

    int ParseInt(int pos)
    {
        int start = pos;
        while (IsDigit(At(pos))) pos++;
        if (pos == start) throw Error(pos, $"expecting an integer, found {Describe(pos)}");
        return pos;
    }

    string Describe(int pos) => pos >= _src.Length ? "end of input" : $"'{_src[pos]}'";

    (uint Value, int Next) ParseHex(int pos, int size)
    {
        uint value = 0;
        for (int i = 0; i < size; i++)
        {
            char c = At(pos + i);
            int d = c switch { >= '0' and <= '9' => c - '0', >= 'a' and <= 'f' => c - 'a' + 10, >= 'A' and <= 'F' => c - 'A' + 10, _ => -1 };
            if (d < 0) throw Error(pos + i, $"bad escape: expecting {size} hex digits");
            value = (value << 4) | (uint)d;
        }
        return (value, pos + size);
    }

    (uint Value, int Next) ParseChar(int pos)
    {
        char c = At(pos);
        if (c == '\\')
        {
            char e = At(pos + 1);
            return e switch
            {
                'x' => ParseHex(pos + 2, 2),
                'u' => ParseHex(pos + 2, 4),
                'U' => ParseHex(pos + 2, 8),
                't' => ('\t', pos + 2),
                'r' => ('\r', pos + 2),
                'n' => ('\n', pos + 2),
                '\\' or '"' or '[' or ']' or '-' => (e, pos + 2),
                _ => throw Error(pos, $"bad escape '\\{(e == '\0' ? "" : e.ToString())}'"),
            };
        }
        if (pos >= _src.Length) throw Error(pos, "unexpected end of input");
        if (char.IsHighSurrogate(c) && pos + 1 < _src.Length && char.IsLowSurrogate(_src[pos + 1]))
            return ((uint)char.ConvertToUtf32(c, _src[pos + 1]), pos + 2);
        return (c, pos + 1);
    }

    void ParseAll()
    {
        if (_src.Contains('\0')) throw Error(_src.IndexOf('\0'), "NUL character in grammar text");
        int pos = ParseSpace(0, true);
        while (pos < _src.Length) pos = ParseRule(pos);
    }

    int ParseRule(int src)
    {
        int nameEnd = ParseName(src);
        int pos = ParseSpace(nameEnd, false);
        var name = _src[src..nameEnd];
        int ruleId = SymbolId(name, src);
        if (!(At(pos) == ':' && At(pos + 1) == ':' && At(pos + 2) == '=')) throw Error(pos, $"expecting ::= after rule name '{name}', found {Describe(pos)}");
        pos = ParseSpace(pos + 3, true);
        pos = ParseAlternates(pos, name, ruleId, false);
        if (At(pos) == '\r') pos += At(pos + 1) == '\n' ? 2 : 1;
        else if (At(pos) == '\n') pos++;
        else if (pos < _src.Length)
            throw Error(pos, At(pos) == ')' ? "unbalanced ')'" : $"expecting newline or end, found {Describe(pos)}");
        return ParseSpace(pos, true);
    }

    int ParseAlternates(int src, string ruleName, int ruleId, bool nested)
    {
        if (++_depth > MaxNesting) throw Error(src, $"groups nested deeper than {MaxNesting}");
        var rule = new List<GrammarElement>();
        int pos = ParseSequence(src, ruleName, rule, nested);
        while (At(pos) == '|')
        {
            rule.Add(new(GrammarElementType.Alt, 0));
            pos = ParseSpace(pos + 1, true);
            pos = ParseSequence(pos, ruleName, rule, nested);
        }
        rule.Add(new(GrammarElementType.End, 0));
        AddRule(ruleId, rule, src);
        _depth--;
        return pos;
    }

    int ParseSequence(int src, string ruleName, List<GrammarElement> rule, bool nested)
    {
        int lastSymStart = rule.Count;
        int pos = src;
        long nPrevRules = 1;

        void HandleRepetitions(long minTimes, long maxTimes, int at)
        {
            bool noMax = maxTimes == long.MaxValue;
            if (lastSymStart == rule.Count) throw Error(at, "expecting an item before */+/?/{");
            var prev = rule.GetRange(lastSymStart, rule.Count - lastSymStart);
            long totalRules = 1;
            if (!noMax && maxTimes > 0) totalRules = maxTimes;
            else if (minTimes > 0) totalRules = minTimes;
            if (nPrevRules * totalRules > MaxRepetitionThreshold)
                throw Error(at, "number of rules that are going to be repeated multiplied by the new repetition exceeds sane defaults (2000)");
            if ((long)prev.Count * Math.Max(1, Math.Max(minTimes, noMax ? 1 : maxTimes)) + _elements > MaxElements)
                throw Error(at, $"repetition expands the grammar beyond {MaxElements} elements");

            if (minTimes == 0) rule.RemoveRange(lastSymStart, rule.Count - lastSymStart);
            else for (long i = 1; i < minTimes; i++) rule.AddRange(prev);

            int lastRecRuleId = 0;
            long nOpt = noMax ? 1 : maxTimes - minTimes;
            for (long i = 0; i < nOpt; i++)
            {
                var rec = new List<GrammarElement>(prev);
                int recId = GenerateSymbolId(ruleName, at);
                if (i > 0 || noMax) rec.Add(new(GrammarElementType.RuleRef, (uint)(noMax ? recId : lastRecRuleId)));
                rec.Add(new(GrammarElementType.Alt, 0));
                rec.Add(new(GrammarElementType.End, 0));
                AddRule(recId, rec, at);
                lastRecRuleId = recId;
            }
            if (nOpt > 0) rule.Add(new(GrammarElementType.RuleRef, (uint)lastRecRuleId));
            nPrevRules *= totalRules;
        }

        while (pos < _src.Length)
        {
            char c = _src[pos];
            if (c == '"')
            {
                int start = pos;
                pos++;
                lastSymStart = rule.Count;
                nPrevRules = 1;
                while (At(pos) != '"')
                {
                    if (pos >= _src.Length) throw Error(start, "unterminated string literal");
                    var (value, next) = ParseChar(pos);
                    pos = next;
                    rule.Add(new(GrammarElementType.Char, value));
                }
                pos = ParseSpace(pos + 1, nested);
            }
            else if (c == '[')
            {
                int start = pos;
                pos++;
                var startType = GrammarElementType.Char;
                if (At(pos) == '^') { pos++; startType = GrammarElementType.CharNot; }
                lastSymStart = rule.Count;
                nPrevRules = 1;
                while (At(pos) != ']')
                {
                    if (pos >= _src.Length) throw Error(start, "unterminated character class '['");
                    var (value, next) = ParseChar(pos);
                    pos = next;
                    var type = lastSymStart < rule.Count ? GrammarElementType.CharAlt : startType;
                    rule.Add(new(type, value));
                    if (At(pos) == '-' && At(pos + 1) != ']')
                    {
                        if (pos + 1 >= _src.Length) throw Error(start, "unterminated character class '['");
                        var (upper, next2) = ParseChar(pos + 1);
                        pos = next2;
                        rule.Add(new(GrammarElementType.CharRangeUpper, upper));
                    }
                }
                pos = ParseSpace(pos + 1, nested);
            }
            else if (c is '<' or '!')
            {
                throw Error(pos, "token references (<[id]>, <token>, !<...>) are not supported");
            }
            else if (IsWordChar(c))
            {
                int nameEnd = ParseName(pos);
                int refId = SymbolId(_src[pos..nameEnd], pos);
                pos = ParseSpace(nameEnd, nested);
                lastSymStart = rule.Count;
                nPrevRules = 1;
                rule.Add(new(GrammarElementType.RuleRef, (uint)refId));
            }
            else if (c == '(')
            {
                int open = pos;
                pos = ParseSpace(pos + 1, true);
                int before = _names.Count;
                int subId = GenerateSymbolId(ruleName, pos);
                pos = ParseAlternates(pos, ruleName, subId, true);
                nPrevRules = Math.Max(1, _names.Count - before);
                lastSymStart = rule.Count;
                rule.Add(new(GrammarElementType.RuleRef, (uint)subId));
                if (At(pos) != ')') throw Error(open, $"unbalanced '(': expecting ')' at line/column of {Describe(pos)}");
                pos = ParseSpace(pos + 1, nested);
            }
            else if (c == '.')
            {
                lastSymStart = rule.Count;
                nPrevRules = 1;
                rule.Add(new(GrammarElementType.CharAny, 0));
                pos = ParseSpace(pos + 1, nested);
            }
            else if (c is '*' or '+' or '?')
            {
                int at = pos;
                pos = ParseSpace(pos + 1, nested);
                if (c == '*') HandleRepetitions(0, long.MaxValue, at);
                else if (c == '+') HandleRepetitions(1, long.MaxValue, at);
                else HandleRepetitions(0, 1, at);
            }
            else if (c == '{')
            {
                int at = pos;
                pos = ParseSpace(pos + 1, nested);
                if (!IsDigit(At(pos))) throw Error(pos, $"expecting an integer after '{{', found {Describe(pos)}");
                int intEnd = ParseInt(pos);
                long minTimes = ParseCount(pos, intEnd);
                pos = ParseSpace(intEnd, nested);
                long maxTimes = long.MaxValue;
                if (At(pos) == '}')
                {
                    maxTimes = minTimes;
                    pos = ParseSpace(pos + 1, nested);
                }
                else if (At(pos) == ',')
                {
                    pos = ParseSpace(pos + 1, nested);
                    if (IsDigit(At(pos)))
                    {
                        int end2 = ParseInt(pos);
                        maxTimes = ParseCount(pos, end2);
                        pos = ParseSpace(end2, nested);
                    }
                    if (At(pos) != '}') throw Error(pos, $"expecting '}}', found {Describe(pos)}");
                    pos = ParseSpace(pos + 1, nested);
                }
                else throw Error(pos, $"expecting ',' or '}}', found {Describe(pos)}");
                if (minTimes > MaxRepetitionThreshold) throw Error(at, "number of repetitions exceeds sane defaults (2000), please reduce the number of repetitions");
                if (maxTimes != long.MaxValue && maxTimes > MaxRepetitionThreshold) maxTimes = long.MaxValue;
                if (maxTimes < minTimes) throw Error(at, $"repetition {{{minTimes},{maxTimes}}}: the maximum is below the minimum");
                HandleRepetitions(minTimes, maxTimes, at);
            }
            else break;
        }
        return pos;
    }

    long ParseCount(int start, int end) =>
        long.TryParse(_src.AsSpan(start, end - start), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : long.MaxValue / 2;

    Grammar Build(string root)
    {
        if (_rules.Count == 0 && _names.Count == 0) throw new GrammarException("empty grammar: no rules");
        for (int id = 0; id < _names.Count; id++)
            if (id >= _rules.Count || _rules[id] is null)
                throw Error(_firstUse.GetValueOrDefault(id), $"undefined rule '{_names[id]}'");
        if (!_symbolIds.TryGetValue(root, out var rootId)) throw new GrammarException($"grammar does not define the start rule '{root}'");
        var g = new Grammar([.. _rules.Select(r => r!.ToArray())], [.. _names], rootId);
        g.CheckLeftRecursion();
        return g;
    }
}
