namespace Engine;

/// <summary>The per-token log-probabilities of a sequence under a model (<see cref="Model.ScoreAsync(IReadOnlyList{int}, System.Threading.CancellationToken)"/>):
/// for every token after the first, how likely the model found it given the tokens before it.</summary>
public sealed class TokenLogProbabilities
{
    internal TokenLogProbabilities(IReadOnlyList<int> tokens, IReadOnlyList<TokenScore> scores)
    {
        Tokens = tokens;
        Scores = scores;
        double sum = 0;
        foreach (var s in scores) sum += s.LogProbability;
        TotalLogProbability = sum;
    }

    /// <summary>The tokens scored, as fed (a text's tokens start with BOS when the vocabulary adds one).</summary>
    public IReadOnlyList<int> Tokens { get; }

    /// <summary>One score per token after the first: Scores[i] is Tokens[i + 1]'s.</summary>
    public IReadOnlyList<TokenScore> Scores { get; }

    /// <summary>The sum of the log-probabilities: the log-probability of the whole sequence after its first token.</summary>
    public double TotalLogProbability { get; }

    /// <summary>exp of the mean negative log-probability: the perplexity of this one sequence, every token scored with all
    /// of the sequence before it (llama-perplexity scores only the second half of each window; see
    /// <see cref="Model.PerplexityAsync(IReadOnlyList{int}, PerplexityOptions?, System.Threading.CancellationToken)"/>).</summary>
    public double Perplexity => Math.Exp(-TotalLogProbability / Scores.Count);
}
