namespace Engine.Grammar;

/// <summary>
/// A compiled GBNF grammar: llama.cpp's rule arrays laid end to end in one element array, so that a grammar
/// position (a stack entry) is one int. Immutable and thread-safe. Build one with <see cref="Parse"/>.
/// </summary>
internal sealed class Grammar
{
    readonly GrammarElement[] _elements;
    readonly int[] _ruleStart;

    public Grammar(GrammarElement[][] rules, string[] names, int root)
    {
        RuleNames = names;
        Root = root;
        _ruleStart = new int[rules.Length];
        var all = new List<GrammarElement>();
        for (int r = 0; r < rules.Length; r++)
        {
            _ruleStart[r] = all.Count;
            all.AddRange(rules[r]);
        }
        _elements = [.. all];
    }

    /// <summary>Parses GBNF text (llama.cpp's dialect); <paramref name="root"/> names the start rule.</summary>
    /// <exception cref="GrammarException">The text is not a valid grammar (the message gives line and column).</exception>
    public static Grammar Parse(string gbnf, string root = "root") => GbnfParser.Parse(gbnf, root);

    public IReadOnlyList<string> RuleNames { get; }
    public int Root { get; }
    public int RuleCount => _ruleStart.Length;
    public ReadOnlySpan<GrammarElement> Elements => _elements;
    public GrammarElement this[int position] => _elements[position];
    public int RuleStart(int rule) => _ruleStart[rule];

    /// <summary>Whether code point <paramref name="c"/> satisfies the character class at <paramref name="pos"/>;
    /// <paramref name="after"/> is the position following the class (llama_grammar_match_char).</summary>
    public bool MatchChar(int pos, uint c, out int after)
    {
        var e = _elements;
        bool found = false;
        bool positive = e[pos].Type is GrammarElementType.Char or GrammarElementType.CharAny;
        do
        {
            if (e[pos + 1].Type == GrammarElementType.CharRangeUpper)
            {
                found = found || (e[pos].Value <= c && c <= e[pos + 1].Value);
                pos += 2;
            }
            else if (e[pos].Type == GrammarElementType.CharAny)
            {
                found = true;
                pos += 1;
            }
            else
            {
                found = found || e[pos].Value == c;
                pos += 1;
            }
        } while (e[pos].Type == GrammarElementType.CharAlt);
        after = pos;
        return found == positive;
    }

    /// <summary>Whether some code point in [<paramref name="low"/>, <paramref name="high"/>] could satisfy the class at
    /// <paramref name="pos"/> (llama_grammar_match_partial_char, with the range already computed).</summary>
    public bool MatchRange(int pos, uint low, uint high)
    {
        var e = _elements;
        bool positive = e[pos].Type is GrammarElementType.Char or GrammarElementType.CharAny;
        do
        {
            if (e[pos + 1].Type == GrammarElementType.CharRangeUpper)
            {
                if (e[pos].Value <= high && low <= e[pos + 1].Value) return positive;
                pos += 2;
            }
            else if (e[pos].Type == GrammarElementType.CharAny) return true;
            else
            {
                if (low <= e[pos].Value && e[pos].Value <= high) return positive;
                pos += 1;
            }
        } while (e[pos].Type == GrammarElementType.CharAlt);
        return !positive;
    }

    /// <summary>Refuses left recursion as llama.cpp does (llama_grammar_detect_left_recursion), with nullability
    /// computed transitively (a rule whose alternative is made of nullable rules is nullable), so every grammar whose
    /// stack expansion could loop is refused here rather than at generation time.</summary>
    internal void CheckLeftRecursion()
    {
        int n = _ruleStart.Length;
        var nullable = new bool[n];
        bool changed = true;
        while (changed)
        {
            changed = false;
            for (int r = 0; r < n; r++)
            {
                if (nullable[r]) continue;
                int p = _ruleStart[r];
                bool altNullable = true;
                while (true)
                {
                    var e = _elements[p];
                    if (e.IsEndOfSequence)
                    {
                        if (altNullable) { nullable[r] = true; changed = true; break; }
                        if (e.Type == GrammarElementType.End) break;
                        altNullable = true;
                    }
                    else if (e.Type != GrammarElementType.RuleRef || !nullable[e.Value]) altNullable = false;
                    p++;
                }
            }
        }
        // Edges r -> s when s can be reached at the left of r after only nullable symbols.
        var edges = new List<int>[n];
        for (int r = 0; r < n; r++)
        {
            edges[r] = [];
            int p = _ruleStart[r];
            bool leftmost = true;
            while (true)
            {
                var e = _elements[p];
                if (e.IsEndOfSequence)
                {
                    if (e.Type == GrammarElementType.End) break;
                    leftmost = true;
                }
                else if (e.Type == GrammarElementType.RuleRef)
                {
                    if (leftmost) edges[r].Add((int)e.Value);
                    if (!nullable[e.Value]) leftmost = false;
                }
                else if (e.Type is not (GrammarElementType.CharAlt or GrammarElementType.CharRangeUpper)) leftmost = false;
                p++;
            }
        }
        var color = new byte[n]; // 0 new, 1 on stack, 2 done
        var stack = new Stack<(int Rule, int Edge)>();
        for (int s = 0; s < n; s++)
        {
            if (color[s] != 0) continue;
            stack.Push((s, 0));
            color[s] = 1;
            while (stack.Count > 0)
            {
                var (r, i) = stack.Pop();
                if (i < edges[r].Count)
                {
                    stack.Push((r, i + 1));
                    int t = edges[r][i];
                    if (color[t] == 1)
                        throw new GrammarException($"unsupported grammar, left recursion detected for nonterminal '{RuleNames[t]}'");
                    if (color[t] == 0) { color[t] = 1; stack.Push((t, 0)); }
                }
                else color[r] = 2;
            }
        }
    }

    /// <summary>The rules in GBNF, as llama.cpp's print_grammar writes them (for diagnostics).</summary>
    public override string ToString()
    {
        var sb = new System.Text.StringBuilder();
        for (int r = 0; r < _ruleStart.Length; r++)
        {
            sb.Append(RuleNames[r]).Append(" ::= ");
            int p = _ruleStart[r];
            for (; _elements[p].Type != GrammarElementType.End; p++)
            {
                var e = _elements[p];
                switch (e.Type)
                {
                    case GrammarElementType.Alt: sb.Append("| "); break;
                    case GrammarElementType.RuleRef: sb.Append(RuleNames[(int)e.Value]).Append(' '); break;
                    case GrammarElementType.Char: sb.Append('[').Append(Show(e.Value)); break;
                    case GrammarElementType.CharNot: sb.Append("[^").Append(Show(e.Value)); break;
                    case GrammarElementType.CharRangeUpper: sb.Append('-').Append(Show(e.Value)); break;
                    case GrammarElementType.CharAlt: sb.Append(Show(e.Value)); break;
                    case GrammarElementType.CharAny: sb.Append('.'); break;
                }
                if (e.Type is GrammarElementType.Char or GrammarElementType.CharNot or GrammarElementType.CharRangeUpper or GrammarElementType.CharAlt or GrammarElementType.CharAny
                    && _elements[p + 1].Type is not (GrammarElementType.CharAlt or GrammarElementType.CharRangeUpper or GrammarElementType.CharAny))
                    sb.Append("] ");
            }
            sb.Append('\n');
        }
        return sb.ToString();
    }

    static string Show(uint c) => c is >= 0x20 and <= 0x7f ? ((char)c).ToString() : $"<U+{c:X4}>";
}
