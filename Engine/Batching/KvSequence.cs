namespace Engine.Batching;

/// <summary>
/// One sequence's place in the paged KV cache: the tokens it holds (all of which the model reads in order), how many of
/// them are computed (their keys and values are in the blocks), and its block table. A session keeps one for its whole
/// life, so a conversation's cache survives between replies; a preempted sequence gives its blocks back and is computed
/// again (mostly from the prefix cache) when it runs next.
///
/// Between steps, Blocks.Count == ceil(Computed / BlockTokens). Only the scheduler changes it, under its lock.
/// </summary>
internal sealed class KvSequence(int contextLength)
{
    /// <summary>Every token of the sequence: the computed ones, then those still to be read (a prompt's rest, or the
    /// token the last generation ended on).</summary>
    public readonly List<int> Tokens = [];
    /// <summary>Block i holds positions [i*BlockTokens, (i+1)*BlockTokens).</summary>
    public readonly List<int> Blocks = [];
    /// <summary>The chained names of the leading full blocks (their prefix-cache names), one per full computed block.</summary>
    public readonly List<ulong> Names = [];
    /// <summary>Tokens whose keys and values are in the blocks.</summary>
    public int Computed;
    /// <summary>The id hooks see for this sequence (a session's <see cref="Session.Id"/>).</summary>
    public long Id { get; } = Engine.Models.SequenceIds.Next();
    /// <summary>Set once the sequence has run with hooks of its own: its keys and values may have been edited, so its
    /// blocks are neither published to nor taken from the prefix cache from then on.</summary>
    public bool Unshared;
    /// <summary>Most tokens the sequence may hold.</summary>
    public int ContextLength { get; } = contextLength;
    /// <summary>The generation running on it, if any.</summary>
    public GenerationJob? Job;
    /// <summary>Set when its owner is gone; its blocks are returned and it is never scheduled again.</summary>
    public bool Closed;
    /// <summary>True when the last token is one a generation yielded and the model has not been shown yet as input (it
    /// is read first thing by the next generation): the session's visible tokens stop before it.</summary>
    public bool EndsWithYielded;
    /// <summary>The step it last ran in: idle sequences are preempted least recently used first.</summary>
    public long LastStep;

    /// <summary>The parent name for the block after the leading full blocks.</summary>
    public ulong LastName => Names.Count == 0 ? 0 : Names[^1];
}
