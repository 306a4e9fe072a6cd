namespace Engine;

/// <summary>How well the model predicted one token of a text from the tokens before it.</summary>
/// <param name="Position">The token's index in the scored sequence (1 or more: the first token has nothing before it).</param>
/// <param name="Token">The token id.</param>
/// <param name="LogProbability">Natural-log probability the model gave the token (0 or less).</param>
/// <param name="Rank">How many tokens the model found more likely: 0 when it was the model's first choice.</param>
/// <param name="MostLikelyToken">The token the model found most likely at this position.</param>
/// <param name="MostLikelyLogProbability">That token's natural-log probability.</param>
public readonly record struct TokenScore(int Position, int Token, double LogProbability, int Rank, int MostLikelyToken, double MostLikelyLogProbability);
