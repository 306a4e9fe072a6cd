namespace Engine;

/// <summary>The state of a model's KV cache (<see cref="Model.KvCacheStatistics"/>): how full it is, how much the prefix
/// cache saved, and how often requests had to give their blocks back.</summary>
public sealed record KvCacheStatistics
{
    /// <summary>Tokens the cache holds over all sessions.</summary>
    public int CapacityTokens { get; init; }
    /// <summary>Tokens per block: a sequence takes memory in blocks of this many positions.</summary>
    public int BlockTokens { get; init; }
    /// <summary>Blocks in the cache.</summary>
    public int Blocks { get; init; }
    /// <summary>Blocks held by sessions and requests now.</summary>
    public int BlocksInUse { get; init; }
    /// <summary>Blocks no session holds but kept for the prefix cache (given up when room is needed).</summary>
    public int CachedBlocks { get; init; }
    /// <summary>Bytes of memory the cache holds now (on the CPU, the blocks touched so far).</summary>
    public long Bytes { get; init; }
    /// <summary>Prompt tokens served from the prefix cache instead of being computed.</summary>
    public long PrefixCacheHitTokens { get; init; }
    /// <summary>Prompt tokens looked up in the prefix cache (in whole blocks), hits and misses.</summary>
    public long PrefixCacheLookupTokens { get; init; }
    /// <summary>Cached blocks given up to make room.</summary>
    public long Evictions { get; init; }
    /// <summary>Times a sequence gave its blocks back for an older request (it is computed again when it runs next).</summary>
    public long Preemptions { get; init; }
    /// <summary>Requests generating or reading their prompt now.</summary>
    public int RunningRequests { get; init; }
    /// <summary>Requests waiting for room.</summary>
    public int WaitingRequests { get; init; }
}
