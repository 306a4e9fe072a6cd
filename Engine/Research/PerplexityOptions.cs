namespace Engine;

/// <summary>How <see cref="Model.PerplexityAsync(IReadOnlyList{int}, PerplexityOptions?, System.Threading.CancellationToken)"/>
/// cuts a text into windows (llama-perplexity's defaults).</summary>
public sealed record PerplexityOptions
{
    /// <summary>Tokens per window (llama-perplexity's -c, default 512): the text is cut into windows of this many tokens,
    /// each run in a fresh cache, and the second half of each is scored. At most the model's
    /// <see cref="ModelInfo.ContextLength"/>; at least 3 (so that one token is scored).</summary>
    public int ContextLength { get; init; } = 512;

    /// <summary>Windows to evaluate, from the start of the text (llama-perplexity's --chunks); null for every whole
    /// window the text holds.</summary>
    public int? MaxChunks { get; init; }

    /// <summary>Told after each window: the running perplexity, as llama-perplexity prints [1]12.34,[2]...; null for none.</summary>
    public IProgress<PerplexityProgress>? Progress { get; init; }
}

/// <summary>The estimate after one more window of a perplexity run.</summary>
/// <param name="Chunk">Windows done, 1 or more.</param>
/// <param name="Chunks">Windows in the run.</param>
/// <param name="Perplexity">The perplexity over every token scored so far.</param>
public readonly record struct PerplexityProgress(int Chunk, int Chunks, double Perplexity);

/// <summary>The result of <see cref="Model.PerplexityAsync(IReadOnlyList{int}, PerplexityOptions?, System.Threading.CancellationToken)"/>:
/// the numbers llama-perplexity prints.</summary>
public sealed record PerplexityResult
{
    /// <summary>exp(mean negative log-likelihood) over every scored token (llama-perplexity's "Final estimate: PPL").</summary>
    public required double Perplexity { get; init; }
    /// <summary>The perplexity's standard error (llama-perplexity's "+/-"): the standard error of the mean negative
    /// log-likelihood times the perplexity.</summary>
    public required double Uncertainty { get; init; }
    /// <summary>The mean negative log-likelihood per scored token, in nats.</summary>
    public required double MeanNegativeLogLikelihood { get; init; }
    /// <summary>Tokens scored: (ContextLength - ContextLength / 2 - 1) per window.</summary>
    public required int ScoredTokens { get; init; }
    /// <summary>Windows evaluated.</summary>
    public required int Chunks { get; init; }
    /// <summary>Tokens per window.</summary>
    public required int ContextLength { get; init; }
    /// <summary>The text's tokens (with BOS when the vocabulary adds one), of which Chunks x ContextLength were used.</summary>
    public required int TextTokens { get; init; }
    /// <summary>The running perplexity after each window, as llama-perplexity prints it ([1]12.34,[2]...).</summary>
    public required IReadOnlyList<double> RunningPerplexity { get; init; }
}
