namespace Engine.Batching;

/// <summary>
/// Who holds which block of the paged KV pool, and the prefix cache over them.
///
/// A block is free, held (by one or more sequences: a reference count), or cached: no sequence holds it but it is full
/// and its keys and values are still valid for the tokens it was computed from. A full block is named by a hash chain,
/// hash(parent block's hash, its own token ids), so a block's name says everything that went into its keys and values:
/// the same tokens after the same prefix. A new sequence that starts with the same prefix (a system prompt, the earlier
/// turns of a chat) looks its blocks up by name and holds them instead of computing them again. Cached blocks are
/// evicted least recently used first, and only when no block is free.
///
/// Not thread-safe: the scheduler calls it under its lock.
/// </summary>
internal sealed class KvBlockManager
{
    readonly int[] _references;
    readonly ulong[] _name;            // a full block's chained hash (valid while _named)
    readonly bool[] _named;
    readonly int[][] _tokens;          // a named block's token ids, checked on lookup so a hash collision cannot match
    readonly ulong[] _parentName;
    readonly Stack<int> _free = new();
    // Cached blocks (named, unreferenced), least recently released first; a node per block for O(1) removal.
    readonly LinkedList<int> _cached = new();
    readonly LinkedListNode<int>?[] _cachedNode;
    readonly Dictionary<ulong, int> _byName = [];

    /// <summary>Bytes the manager keeps per block, measured by its fields: the per-block arrays, a full block's token
    /// ids (kept for the prefix cache), its free-stack slot, and its node in the cache list and name table.</summary>
    public static long BytesPerBlock(int blockTokens) =>
        sizeof(int) + sizeof(ulong) + sizeof(bool) + IntPtr.Size + sizeof(ulong) + IntPtr.Size + sizeof(int)
        + 24 + (long)blockTokens * sizeof(int) + 48 + 24;

    public KvBlockManager(int blocks)
    {
        if (blocks <= 0) throw new ArgumentOutOfRangeException(nameof(blocks));
        Blocks = blocks;
        _references = new int[blocks];
        _name = new ulong[blocks];
        _named = new bool[blocks];
        _tokens = new int[blocks][];
        _parentName = new ulong[blocks];
        _cachedNode = new LinkedListNode<int>?[blocks];
        // Lowest ids first: a lightly used pool touches (and so allocates) only its first blocks.
        for (int b = blocks - 1; b >= 0; b--) _free.Push(b);
    }

    public int Blocks { get; }
    /// <summary>Blocks no sequence holds: free ones and cached ones (which are evicted when needed).</summary>
    public int Available => _free.Count + _cached.Count;
    /// <summary>Blocks held by at least one sequence.</summary>
    public int Held => Blocks - Available;
    /// <summary>Unreferenced blocks kept for the prefix cache.</summary>
    public int Cached => _cached.Count;
    /// <summary>Tokens served from the prefix cache instead of being computed.</summary>
    public long HitTokens { get; private set; }
    /// <summary>Full blocks looked up in the prefix cache, in tokens (hits and misses).</summary>
    public long LookupTokens { get; private set; }
    /// <summary>Cached blocks given up to make room.</summary>
    public long Evictions { get; private set; }

    /// <summary>The name of a full block: its tokens after its parent's name (0 for the first block).</summary>
    public static ulong Name(ulong parent, ReadOnlySpan<int> tokens)
    {
        // FNV-1a over the parent name and the token ids, finished with a 64-bit mixer: cheap, and with the tokens
        // checked on every hit a collision can only cost a miss, never a wrong block.
        ulong h = 14695981039346656037UL ^ parent;
        h *= 1099511628211UL;
        foreach (int t in tokens) { h ^= (uint)t; h *= 1099511628211UL; }
        h ^= h >> 33; h *= 0xff51afd7ed558ccdUL; h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53UL; h ^= h >> 33;
        return h;
    }

    /// <summary>Takes a block for a sequence: a free one, else the least recently used cached one.</summary>
    public bool TryAllocate(out int block)
    {
        if (_free.TryPop(out block)) { _references[block] = 1; return true; }
        if (_cached.First is { } oldest)
        {
            block = oldest.Value;
            Uncache(block);
            Forget(block);
            Evictions++;
            _references[block] = 1;
            return true;
        }
        block = -1;
        return false;
    }

    /// <summary>A sequence lets go of a block: a named one stays cached for later hits, others become free.</summary>
    public void Release(int block)
    {
        if (_references[block] <= 0) throw new InvalidOperationException($"KV block {block} is released more often than it was taken");
        if (--_references[block] > 0) return;
        if (_named[block]) _cachedNode[block] = _cached.AddLast(block);
        else _free.Push(block);
    }

    /// <summary>Looks up the full block that follows `parent` with these tokens; on a hit the caller holds it.</summary>
    public bool TryHold(ulong parent, ReadOnlySpan<int> tokens, out int block, out ulong name)
    {
        name = Name(parent, tokens);
        LookupTokens += tokens.Length;
        if (!_byName.TryGetValue(name, out block) || _parentName[block] != parent || !tokens.SequenceEqual(_tokens[block]))
        {
            block = -1;
            return false;
        }
        if (_references[block]++ == 0) Uncache(block);
        HitTokens += tokens.Length;
        return true;
    }

    /// <summary>Names a block a sequence has just filled, so later sequences can find it. A block whose name is already
    /// taken (another sequence computed the same prefix at the same time) stays unnamed: it is freed, not cached.</summary>
    public void Publish(int block, ulong parent, ReadOnlySpan<int> tokens, ulong name)
    {
        if (_named[block] || _byName.ContainsKey(name)) return;
        _named[block] = true;
        _name[block] = name;
        _parentName[block] = parent;
        _tokens[block] = tokens.ToArray();
        _byName[name] = block;
    }

    public bool IsNamed(int block) => _named[block];

    /// <summary>Empties the prefix cache: cached blocks become free and no block can be found by name any more (blocks
    /// computed under other research hooks must not be reused as if computed now).</summary>
    public void ForgetAll()
    {
        while (_cached.First is { } oldest)
        {
            Uncache(oldest.Value);
            _free.Push(oldest.Value);
        }
        for (int b = 0; b < Blocks; b++) Forget(b);
    }

    void Uncache(int block)
    {
        _cached.Remove(_cachedNode[block]!);
        _cachedNode[block] = null;
    }

    void Forget(int block)
    {
        if (!_named[block]) return;
        _byName.Remove(_name[block]);
        _named[block] = false;
        _tokens[block] = [];
    }
}
