using Engine.Backends;

namespace Engine.Models;

/// <summary>The paged KV memory of a model: one <see cref="KvBlockPool"/> per stage, each in its stage's backend and
/// holding that stage's layers, all with the same blocks (block b of every pool holds the same positions of the same
/// sequence), so one block table addresses them all. It owns its pools: disposing it disposes each.</summary>
internal sealed class KvStore : IDisposable
{
    public KvStore(KvBlockPool[] pools, int blocks, int blockTokens, KvElementType type)
    {
        Pools = pools;
        Blocks = blocks;
        BlockTokens = blockTokens;
        Type = type;
    }

    /// <summary>One pool per stage, in stage order.</summary>
    public IReadOnlyList<KvBlockPool> Pools { get; }
    public int Blocks { get; }
    public int BlockTokens { get; }
    public KvElementType Type { get; }
    /// <summary>Positions the store holds at most, over all sequences.</summary>
    public long Capacity => (long)Blocks * BlockTokens;
    /// <summary>Bytes the pools hold in their backends now.</summary>
    public long Bytes => Pools.Sum(p => p.Bytes);
    /// <summary>Bytes one block takes over all stages.</summary>
    public long BlockBytes => Pools.Sum(p => p.Shape.BlockBytes);
    public bool IsDisposed => Pools[0].IsDisposed;

    public void ThrowIfDisposed()
    {
        foreach (var pool in Pools) pool.ThrowIfDisposed();
    }

    /// <summary>Block `from`'s keys and values, every stage, into block `to`.</summary>
    public void CopyBlock(int from, int to)
    {
        foreach (var pool in Pools) pool.CopyBlock(from, to);
    }

    public void Dispose()
    {
        foreach (var pool in Pools) pool.Dispose();
    }

    public override string ToString() => $"KV cache ({Blocks} blocks x {BlockTokens} tokens, {Type})";
}

/// <summary>The KV cache of one sequence on its own: a store of just enough blocks for `ContextLength` tokens, used in
/// order (block i holds positions [i*BlockTokens, (i+1)*BlockTokens)). What the command-line tools, embeddings and
/// golden checks use; sessions share the model's store through the scheduler instead.</summary>
internal sealed class KvCache : IDisposable
{
    public KvCache(KvStore store, int contextLength)
    {
        Store = store;
        ContextLength = contextLength;
        BlockTable = Enumerable.Range(0, store.Blocks).ToArray();
    }

    public KvStore Store { get; }
    public int ContextLength { get; }
    /// <summary>The sequence id hooks see for passes over this cache.</summary>
    public long SequenceId { get; } = SequenceIds.Next();
    /// <summary>0, 1, 2, ...: the sequence owns every block of its store, in order.</summary>
    public int[] BlockTable { get; }
    public long Bytes => Store.IsDisposed ? 0 : Store.Bytes;
    public bool IsDisposed => Store.IsDisposed;
    public void ThrowIfDisposed() => Store.ThrowIfDisposed();
    public void Dispose() => Store.Dispose();
    public override string ToString() => $"KV cache ({ContextLength} tokens, {Store.Type})";
}

/// <summary>Ids of sequences, unique in the process: sessions' and one-off passes' alike, so a hook can tell them apart.</summary>
internal static class SequenceIds
{
    static long _last;
    public static long Next() => Interlocked.Increment(ref _last);
}
