using System.Runtime.CompilerServices;
using Engine.Tokenizers;

namespace Engine.Grammar;

/// <summary>
/// The vocabulary's byte strings as a trie in preorder (XGrammar/llguidance style): node i holds one byte, its depth,
/// the index just past its subtree (<see cref="Next"/>) and the tokens whose bytes end there. Walking it with a
/// grammar state skips a whole subtree as soon as its prefix is rejected. Built once per tokenizer and cached.
/// Tokens with no bytes (control tokens) are left out; end-of-generation tokens are listed apart.
/// </summary>
internal sealed class TokenTrie
{
    static readonly ConditionalWeakTable<ITokenizer, TokenTrie> Cache = new();

    public byte[] Byte { get; }
    public int[] Depth { get; }
    public int[] Next { get; }
    /// <summary>Tokens of node i are TokenIds[TokenStart[i]..TokenStart[i + 1]).</summary>
    public int[] TokenStart { get; }
    public int[] TokenIds { get; }
    public int[] EndOfGeneration { get; }
    public bool[] IsEndOfGeneration { get; }
    public byte[][] Bytes { get; }
    public int VocabSize { get; }
    public int MaxDepth { get; }
    public int NodeCount => Byte.Length;

    /// <summary>The trie of <paramref name="tokenizer"/>, built on first use and kept as long as the tokenizer lives.</summary>
    public static TokenTrie For(ITokenizer tokenizer) => Cache.GetValue(tokenizer, t => new TokenTrie(t));

    TokenTrie(ITokenizer tokenizer) : this(tokenizer.VocabSize, id => tokenizer.IsEndOfGeneration(id) ? null : tokenizer.TokenBytes(id), tokenizer.IsEndOfGeneration) { }

    /// <summary>A trie over explicit byte strings (tests): <paramref name="bytes"/> gives a token's bytes, null or empty
    /// for none.</summary>
    public TokenTrie(int vocabSize, Func<int, byte[]?> bytes, Func<int, bool> isEndOfGeneration)
    {
        VocabSize = vocabSize;
        Bytes = new byte[vocabSize][];
        IsEndOfGeneration = new bool[vocabSize];
        var eog = new List<int>();
        var keyed = new List<int>();
        for (int id = 0; id < vocabSize; id++)
        {
            IsEndOfGeneration[id] = isEndOfGeneration(id);
            Bytes[id] = bytes(id) ?? [];
            if (IsEndOfGeneration[id]) eog.Add(id);
            else if (Bytes[id].Length > 0) keyed.Add(id);
        }
        EndOfGeneration = [.. eog];
        keyed.Sort((a, b) =>
        {
            int c = Bytes[a].AsSpan().SequenceCompareTo(Bytes[b]);
            return c != 0 ? c : a.CompareTo(b);
        });

        var nodeByte = new List<byte>();
        var depth = new List<int>();
        var next = new List<int>();
        var tokStart = new List<int>();
        var tokIds = new List<int>(keyed.Count);
        var path = new List<int>(); // node index per depth along the current key
        byte[] prev = [];
        foreach (var id in keyed)
        {
            var key = Bytes[id];
            int lcp = 0;
            while (lcp < prev.Length && lcp < key.Length && prev[lcp] == key[lcp]) lcp++;
            // Close the nodes of the previous key below the shared prefix.
            for (int d = path.Count - 1; d >= lcp; d--) next[path[d]] = nodeByte.Count;
            path.RemoveRange(lcp, path.Count - lcp);
            for (int d = lcp; d < key.Length; d++)
            {
                path.Add(nodeByte.Count);
                nodeByte.Add(key[d]);
                depth.Add(d);
                next.Add(0);
                tokStart.Add(tokIds.Count);
            }
            tokIds.Add(id); // tokens are added in preorder: the last node on the path owns it
            MaxDepth = Math.Max(MaxDepth, key.Length);
            prev = key;
        }
        foreach (var n in path) next[n] = nodeByte.Count;
        tokStart.Add(tokIds.Count);
        Byte = [.. nodeByte];
        Depth = [.. depth];
        Next = [.. next];
        TokenStart = [.. tokStart];
        TokenIds = [.. tokIds];
    }
}
