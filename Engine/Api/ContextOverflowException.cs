namespace Engine;

/// <summary>A prompt plus generation that would not fit in the KV cache: never silently truncated.</summary>
public sealed class ContextOverflowException(int contextLength, int start, int count)
    : ArgumentException($"the context holds {contextLength} tokens, but positions {start}..{start + count - 1} were requested " +
                $"({start} already in the cache + {count} new); use a larger context (a session's context length, --ctx on the command line) or a shorter prompt")
{
    /// <summary>Tokens the context holds.</summary>
    public int ContextLength { get; } = contextLength;
    /// <summary>Tokens already in the cache before the request.</summary>
    public int Start { get; } = start;
    /// <summary>Tokens the request needed to add.</summary>
    public int Count { get; } = count;
}
