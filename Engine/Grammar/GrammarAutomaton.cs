using System.Numerics;
using System.Runtime.InteropServices;

namespace Engine.Grammar;

/// <summary>
/// The fast path: llama.cpp's stack semantics made into a lazily built byte-level automaton, shared by every
/// generation that uses the same grammar and vocabulary.
///
/// - A stack is a hash-consed linked list (position, parent): one int. Node 0 is the empty stack.
/// - A stack set (llama.cpp's <c>stacks</c>, each already expanded to a character class on top) is interned: one int.
/// - A byte state is (stack set, partial UTF-8 character): one int, with a transition row filled on first use
///   (256 entries; 64 for a state inside a multi-byte character, which only continuation bytes can extend).
/// - The allowed-token mask of a byte state walks the <see cref="TokenTrie"/> and skips the subtree of any prefix that
///   reaches the dead state; masks are cached per byte state, since states repeat (inside a JSON string, every
///   character leads back to the same one).
///
/// Every public member takes a lock: several matchers (generations) may share it across threads.
/// </summary>
internal sealed class GrammarAutomaton
{
    public const int MaxStackNodes = 4_000_000;
    public const int MaxStates = 1_000_000;
    const long MaskCacheBytes = 128L << 20;

    readonly Grammar _g;
    readonly TokenTrie _trie;
    readonly object _lock = new();

    // Stacks.
    readonly List<int> _nodePos = [-1];
    readonly List<int> _nodeParent = [-1];
    readonly Dictionary<long, int> _nodeIndex = [];
    readonly List<int[]?> _expanded = [[0]];
    int _expandDepth;

    // Stack sets.
    readonly List<int[]> _sets = [];
    readonly Dictionary<int[], int> _setIndex = new(new IntArrayComparer());

    // Byte states.
    readonly List<int> _stSet = [];
    readonly List<uint> _stValue = [];
    readonly List<int> _stRemain = [];
    int[] _stRow = new int[1024];
    readonly Dictionary<(int, uint, int), int> _stIndex = [];
    int[] _table = new int[1 << 16]; // 0 unknown, -1 dead, k > 0: state k - 1
    int _tableUsed;

    // Masks.
    readonly Dictionary<int, ulong[]> _masks = [];
    int[] _walkStates = [];

    public GrammarAutomaton(Grammar grammar, TokenTrie trie)
    {
        _g = grammar;
        _trie = trie;
        lock (_lock)
        {
            var initial = new List<int>();
            int pos = grammar.RuleStart(grammar.Root);
            while (true)
            {
                int node = grammar[pos].IsEndOfSequence ? 0 : Node(pos, 0);
                Union(initial, Expand(node));
                while (!grammar[pos].IsEndOfSequence) pos++;
                if (grammar[pos].Type == GrammarElementType.Alt) pos++;
                else break;
            }
            Start = State(InternSet(initial), 0, 0);
        }
    }

    public Grammar Grammar => _g;
    public TokenTrie Trie => _trie;
    public int MaskWords => (_trie.VocabSize + 63) / 64;
    /// <summary>The byte state before any input.</summary>
    public int Start { get; }
    public int StateCount { get { lock (_lock) return _stSet.Count; } }

    int Node(int pos, int parent)
    {
        long key = ((long)pos << 32) | (uint)parent;
        if (_nodeIndex.TryGetValue(key, out var id)) return id;
        id = _nodePos.Count;
        if (id >= MaxStackNodes) throw new GrammarException($"grammar state space too large (more than {MaxStackNodes} stack entries)");
        _nodePos.Add(pos);
        _nodeParent.Add(parent);
        _expanded.Add(null);
        _nodeIndex[key] = id;
        return id;
    }

    /// <summary>llama_grammar_advance_stack on an interned stack: the stacks, each with a character class on top
    /// (or empty), that it stands for. Memoized per stack.</summary>
    int[] Expand(int node)
    {
        if (_expanded[node] is { } done) return done;
        int pos = _nodePos[node];
        var e = _g[pos];
        if (e.Type != GrammarElementType.RuleRef)
        {
            int[] self = [node];
            _expanded[node] = self;
            return self;
        }
        if (++_expandDepth > 10_000) throw new GrammarException("grammar expansion nested too deeply (more than 10000 rule references without input)");
        var acc = new List<int>();
        int parent = _nodeParent[node];
        int sub = _g.RuleStart((int)e.Value);
        while (true)
        {
            int b = parent;
            if (!_g[pos + 1].IsEndOfSequence) b = Node(pos + 1, b);
            if (!_g[sub].IsEndOfSequence) b = Node(sub, b);
            Union(acc, Expand(b));
            while (!_g[sub].IsEndOfSequence) sub++;
            if (_g[sub].Type == GrammarElementType.Alt) sub++;
            else break;
        }
        _expandDepth--;
        var result = acc.ToArray();
        _expanded[node] = result;
        return result;
    }

    static void Union(List<int> acc, int[] more)
    {
        foreach (var x in more)
            if (!acc.Contains(x)) acc.Add(x);
    }

    int InternSet(List<int> members)
    {
        if (members.Count == 0) return -1;
        var key = members.ToArray();
        Array.Sort(key);
        if (_setIndex.TryGetValue(key, out var id)) return id;
        id = _sets.Count;
        _sets.Add(key);
        _setIndex[key] = id;
        return id;
    }

    int State(int set, uint value, int remain)
    {
        if (_stIndex.TryGetValue((set, value, remain), out var id)) return id;
        id = _stSet.Count;
        if (id >= MaxStates) throw new GrammarException($"grammar state space too large (more than {MaxStates} automaton states)");
        int width = remain == 0 ? 256 : 64;
        if (_tableUsed + width > _table.Length) Array.Resize(ref _table, Math.Max(_table.Length * 2, _tableUsed + width));
        _stSet.Add(set);
        _stValue.Add(value);
        _stRemain.Add(remain);
        if (id >= _stRow.Length) Array.Resize(ref _stRow, _stRow.Length * 2);
        _stRow[id] = remain == 0 ? _tableUsed : ~_tableUsed;
        _tableUsed += width;
        _stIndex[(set, value, remain)] = id;
        return id;
    }

    // (set, which members' classes match) -> next set: code points that match the same classes lead to the same set,
    // so the thousands of distinct characters met inside a string cost one lookup each.
    readonly Dictionary<(int, ulong), int> _advanceByMatch = [];

    int AdvanceSet(int set, uint c)
    {
        var members = _sets[set];
        ulong matched = 0;
        bool memo = members.Length <= 64;
        if (memo)
        {
            for (int k = 0; k < members.Length; k++)
                if (members[k] != 0 && _g.MatchChar(_nodePos[members[k]], c, out _)) matched |= 1UL << k;
            if (matched == 0) return -1;
            if (_advanceByMatch.TryGetValue((set, matched), out var known)) return known;
        }
        var acc = new List<int>();
        for (int k = 0; k < members.Length; k++)
        {
            int m = members[k];
            if (m == 0) continue;
            if (!_g.MatchChar(_nodePos[m], c, out var after)) continue;
            int b = _nodeParent[m];
            if (!_g[after].IsEndOfSequence) b = Node(after, b);
            Union(acc, Expand(b));
        }
        int result = InternSet(acc);
        if (memo) _advanceByMatch[(set, matched)] = result;
        return result;
    }

    bool Viable(int set, uint value, int remain)
    {
        var (low, high) = Utf8.PartialRange(value, remain);
        foreach (var m in _sets[set])
            if (m != 0 && _g.MatchRange(_nodePos[m], low, high)) return true;
        return false;
    }

    /// <summary>The transition on one byte, computed the first time. Returns the next state or -1 (dead).</summary>
    int Fill(int s, byte b)
    {
        int set = _stSet[s];
        uint value = _stValue[s];
        int remain = _stRemain[s];
        int next;
        if (remain == 0)
        {
            if (b < 0x80)
            {
                int ns = AdvanceSet(set, b);
                next = ns < 0 ? -1 : State(ns, 0, 0);
            }
            else
            {
                int n = Utf8.LeadLength(b);
                uint v = (uint)(b & (0xFF >> (n + 1)));
                next = n == 0 || !Viable(set, v, n - 1) ? -1 : State(set, v, n - 1);
            }
            _table[_stRow[s] + b] = next + 1 == 0 ? -1 : next + 1;
        }
        else
        {
            uint v = (value << 6) | (uint)(b & 0x3F);
            if (remain == 1)
            {
                int ns = AdvanceSet(set, v);
                next = ns < 0 ? -1 : State(ns, 0, 0);
            }
            else next = Viable(set, v, remain - 1) ? State(set, v, remain - 1) : -1;
            _table[~_stRow[s] + (b & 0x3F)] = next < 0 ? -1 : next + 1;
        }
        return next;
    }

    int Step(int s, byte b)
    {
        int row = _stRow[s];
        int v;
        if (row >= 0) v = _table[row + b];
        else
        {
            if ((b & 0xC0) != 0x80) return -1;
            v = _table[~row + (b & 0x3F)];
        }
        if (v == 0) return Fill(s, b);
        return v < 0 ? -1 : v - 1;
    }

    /// <summary>The state after <paramref name="bytes"/>, or -1 when they cannot match.</summary>
    public int Advance(int state, ReadOnlySpan<byte> bytes)
    {
        lock (_lock)
        {
            foreach (var b in bytes)
            {
                state = Step(state, b);
                if (state < 0) return -1;
            }
            return state;
        }
    }

    /// <summary>True when the grammar may end in <paramref name="state"/>: some stack is empty and no character is half-read.</summary>
    public bool CanEnd(int state)
    {
        lock (_lock) return _stRemain[state] == 0 && _sets[_stSet[state]][0] == 0;
    }

    /// <summary>The allowed tokens in <paramref name="state"/> as a bitset over the vocabulary (cached; do not modify).</summary>
    public ulong[] Mask(int state)
    {
        lock (_lock)
        {
            if (_masks.TryGetValue(state, out var cached)) return cached;
            var mask = new ulong[MaskWords];
            Walk(state, mask);
            if ((long)(_masks.Count + 1) * mask.Length * 8 > MaskCacheBytes) _masks.Clear();
            _masks[state] = mask;
            return mask;
        }
    }

    /// <summary>The trie walk: each node's state is its parent's state stepped on its byte; a dead state skips the
    /// node's whole subtree.</summary>
    void Walk(int start, ulong[] mask)
    {
        var t = _trie;
        if (_walkStates.Length < t.MaxDepth + 1) _walkStates = new int[t.MaxDepth + 1];
        var states = _walkStates;
        var bytes = t.Byte;
        var depth = t.Depth;
        var next = t.Next;
        var tokStart = t.TokenStart;
        var tokIds = t.TokenIds;
        states[0] = start;
        var rows = _stRow;
        var table = _table;
        int n = bytes.Length;
        int i = 0;
        while (i < n)
        {
            int d = depth[i];
            int s = states[d];
            // Inline fast path of Step.
            int row = rows[s];
            byte b = bytes[i];
            int v;
            if (row >= 0) v = table[row + b];
            else v = (b & 0xC0) != 0x80 ? -1 : table[~row + (b & 0x3F)];
            if (v == 0)
            {
                v = Fill(s, b) + 1; // may grow the arrays
                rows = _stRow;
                table = _table;
            }
            if (v <= 0) { i = next[i]; continue; }
            states[d + 1] = v - 1;
            for (int k = tokStart[i], end = tokStart[i + 1]; k < end; k++)
            {
                int id = tokIds[k];
                mask[id >> 6] |= 1UL << id;
            }
            i++;
        }
        if (_stRemain[start] == 0 && _sets[_stSet[start]][0] == 0)
            foreach (var id in t.EndOfGeneration) mask[id >> 6] |= 1UL << id;
    }

    /// <summary>Reference for the mask: every token's bytes fed to a fresh <see cref="ReferenceMatcher"/> copy.</summary>
    public static ulong[] BruteForceMask(ReferenceMatcher matcher, TokenTrie trie)
    {
        var mask = new ulong[(trie.VocabSize + 63) / 64];
        for (int id = 0; id < trie.VocabSize; id++)
        {
            bool ok = trie.IsEndOfGeneration[id]
                ? matcher.IsComplete
                : trie.Bytes[id].Length > 0 && matcher.Clone().AcceptBytes(trie.Bytes[id]);
            if (ok) mask[id >> 6] |= 1UL << id;
        }
        return mask;
    }

    public static int Count(ReadOnlySpan<ulong> mask)
    {
        int n = 0;
        foreach (var w in mask) n += BitOperations.PopCount(w);
        return n;
    }

    sealed class IntArrayComparer : IEqualityComparer<int[]>
    {
        public bool Equals(int[]? x, int[]? y) => x.AsSpan().SequenceEqual(y);
        public int GetHashCode(int[] obj)
        {
            var h = new HashCode();
            h.AddBytes(MemoryMarshal.AsBytes(obj.AsSpan()));
            return h.ToHashCode();
        }
    }
}
