namespace Engine.Grammar;

/// <summary>
/// The plain reference matcher: llama.cpp's algorithm written directly (llama_grammar_advance_stack,
/// llama_grammar_accept, decode_utf8 with a partial character carried across tokens). A set of stacks of grammar
/// positions, the top of each stack a character class; a code point advances every stack whose top matches it; the
/// input is complete when some stack is empty. Slow (copies stacks) and simple: the fast path
/// (<see cref="GrammarAutomaton"/>) is tested against it token by token.
/// UTF-8 is decoded strictly: a byte that cannot continue or start a character, or an overlong lead byte, rejects.
/// </summary>
internal sealed class ReferenceMatcher
{
    readonly Grammar _g;
    List<int[]> _stacks;
    uint _partialValue;
    int _partialRemain;

    public ReferenceMatcher(Grammar grammar)
    {
        _g = grammar;
        _stacks = [];
        int pos = grammar.RuleStart(grammar.Root);
        while (true)
        {
            Advance(grammar[pos].IsEndOfSequence ? [] : [pos], _stacks);
            while (!grammar[pos].IsEndOfSequence) pos++;
            if (grammar[pos].Type == GrammarElementType.Alt) pos++;
            else break;
        }
    }

    ReferenceMatcher(ReferenceMatcher other)
    {
        _g = other._g;
        _stacks = other._stacks; // stacks are never mutated in place
        _partialValue = other._partialValue;
        _partialRemain = other._partialRemain;
    }

    public ReferenceMatcher Clone() => new(this);

    /// <summary>True when some stack is empty and no character is half-read: the grammar may end here.</summary>
    public bool IsComplete => _partialRemain == 0 && _stacks.Any(s => s.Length == 0);

    /// <summary>False once the input can no longer match.</summary>
    public bool IsAlive => _stacks.Count > 0;

    public IReadOnlyList<int[]> Stacks => _stacks;

    void Advance(int[] stack, List<int[]> result)
    {
        if (stack.Length == 0)
        {
            if (!result.Any(s => s.Length == 0)) result.Add(stack);
            return;
        }
        int pos = stack[^1];
        var e = _g[pos];
        if (e.Type == GrammarElementType.RuleRef)
        {
            int sub = _g.RuleStart((int)e.Value);
            while (true)
            {
                var next = new List<int>(stack.AsSpan(0, stack.Length - 1).ToArray());
                if (!_g[pos + 1].IsEndOfSequence) next.Add(pos + 1);
                if (!_g[sub].IsEndOfSequence) next.Add(sub);
                Advance([.. next], result);
                while (!_g[sub].IsEndOfSequence) sub++;
                if (_g[sub].Type == GrammarElementType.Alt) sub++;
                else break;
            }
            return;
        }
        if (!result.Any(s => s.AsSpan().SequenceEqual(stack))) result.Add(stack);
    }

    /// <summary>Advances on one code point.</summary>
    public void AcceptCodePoint(uint c)
    {
        var next = new List<int[]>();
        foreach (var stack in _stacks)
        {
            if (stack.Length == 0) continue;
            if (!_g.MatchChar(stack[^1], c, out var after)) continue;
            var s = new List<int>(stack.AsSpan(0, stack.Length - 1).ToArray());
            if (!_g[after].IsEndOfSequence) s.Add(after);
            Advance([.. s], next);
        }
        _stacks = next;
    }

    /// <summary>Feeds raw bytes (one token's); returns false, leaving the matcher dead, when they cannot match.</summary>
    public bool AcceptBytes(ReadOnlySpan<byte> bytes)
    {
        foreach (var b in bytes)
        {
            if (_stacks.Count == 0) return false;
            if (_partialRemain > 0)
            {
                if ((b & 0xC0) != 0x80) { _stacks = []; return false; }
                _partialValue = (_partialValue << 6) | (uint)(b & 0x3F);
                if (--_partialRemain == 0) AcceptCodePoint(_partialValue);
                else if (!PartialViable()) { _stacks = []; return false; }
                continue;
            }
            if (b < 0x80) { AcceptCodePoint(b); continue; }
            int n = Utf8.LeadLength(b);
            if (n == 0) { _stacks = []; return false; }
            _partialValue = (uint)(b & (0xFF >> (n + 1)));
            _partialRemain = n - 1;
            if (!PartialViable()) { _stacks = []; return false; }
        }
        return _stacks.Count > 0;
    }

    bool PartialViable()
    {
        var (low, high) = Utf8.PartialRange(_partialValue, _partialRemain);
        foreach (var stack in _stacks)
            if (stack.Length > 0 && _g.MatchRange(stack[^1], low, high)) return true;
        return false;
    }
}

/// <summary>UTF-8 helpers shared by the matchers.</summary>
internal static class Utf8
{
    /// <summary>Length of the character a lead byte starts (2 to 4), or 0 for a continuation byte, an overlong lead
    /// (C0, C1) or a byte that never starts a character (F8-FF). ASCII is not a lead byte here.</summary>
    public static int LeadLength(byte b) => b switch
    {
        >= 0xC2 and <= 0xDF => 2,
        >= 0xE0 and <= 0xEF => 3,
        >= 0xF0 and <= 0xF7 => 4,
        _ => 0,
    };

    /// <summary>The code points a partial character (bits read so far, continuation bytes still to come) can become,
    /// as llama_grammar_match_partial_char computes them.</summary>
    public static (uint Low, uint High) PartialRange(uint value, int remain)
    {
        uint low = value << (remain * 6);
        uint high = low | ((1u << (remain * 6)) - 1);
        if (low == 0)
        {
            if (remain == 2) low = 1 << 11;
            else if (remain == 3) low = 1 << 16;
        }
        return (low, high);
    }
}
