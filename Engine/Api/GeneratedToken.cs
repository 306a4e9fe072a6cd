namespace Engine;

/// <summary>Why a generation ended.</summary>
public enum FinishReason
{
    /// <summary>The model produced an end-of-generation token (end of its turn).</summary>
    EndOfGeneration,
    /// <summary>One of the stop sequences was produced.</summary>
    StopSequence,
    /// <summary><see cref="GenerateOptions.MaxTokens"/> tokens were generated.</summary>
    MaxTokens,
    /// <summary>The session's context is full: no further token fits in its KV cache.</summary>
    ContextFull,
}

/// <summary>A likely token at one position, as reported with <see cref="GenerateOptions.TopLogProbabilities"/>.</summary>
/// <param name="Id">The token id.</param>
/// <param name="Text">The token as text (special tokens as their text).</param>
/// <param name="LogProbability">Its natural-log probability under the model's distribution (temperature 1, before sampling filters).</param>
public readonly record struct TokenAlternative(int Id, string Text, float LogProbability);

/// <summary>How long a generation took.</summary>
/// <param name="PromptTokens">Prompt tokens fed to the model (those already in the cache are not counted).</param>
/// <param name="PromptTime">Time to process them, up to the first token's logits.</param>
/// <param name="GeneratedTokens">Tokens generated (an end-of-generation token that ended the turn is not counted).</param>
/// <param name="GenerationTime">Time from the first token's logits to the end.</param>
/// <param name="CachedTokens">Tokens before the prompt that the session's cache already held and that were not computed
/// again (the earlier turns of a chat).</param>
public sealed record GenerationTimings(int PromptTokens, TimeSpan PromptTime, int GeneratedTokens, TimeSpan GenerationTime, int CachedTokens = 0)
{
    /// <summary>Prompt tokens per second.</summary>
    public double PromptTokensPerSecond => PromptTokens / Math.Max(1e-9, PromptTime.TotalSeconds);
    /// <summary>Generated tokens per second. The first token comes from the prompt's logits, so this counts the rest.</summary>
    public double GenerationTokensPerSecond => Math.Max(0, GeneratedTokens - 1) / Math.Max(1e-9, GenerationTime.TotalSeconds);
}

/// <summary>One token of a generation, as <see cref="Session.GenerateAsync(string, GenerateOptions?, System.Threading.CancellationToken)"/>
/// streams it. The last one has <see cref="FinishReason"/> and <see cref="Timings"/>.</summary>
public sealed record GeneratedToken
{
    /// <summary>The token id; -1 only for the single token a generation with <see cref="GenerateOptions.MaxTokens"/> = 0
    /// reports (that generation reads the prompt into the cache and samples nothing).</summary>
    public required int Id { get; init; }
    /// <summary>The text this token releases. It can be empty, or hold text of earlier tokens: an incomplete UTF-8
    /// character, or text that may begin a stop sequence, waits for the next token. Concatenating every token's text
    /// gives the generated text exactly (a cancelled stream drops what was still waiting).</summary>
    public required string Text { get; init; }
    /// <summary>The token's natural-log probability under the model's distribution (temperature 1, before sampling filters).</summary>
    public required float LogProbability { get; init; }
    /// <summary>The most likely tokens at this position, most likely first, when <see cref="GenerateOptions.TopLogProbabilities"/>
    /// asked for them; otherwise empty.</summary>
    public IReadOnlyList<TokenAlternative> TopAlternatives { get; init; } = [];
    /// <summary>True for the end-of-generation token that ended the turn: it is reported, never fed to the model, and
    /// its <see cref="Text"/> holds only text that was waiting.</summary>
    public bool IsEndOfGeneration { get; init; }
    /// <summary>Set on the last token only: why the generation ended.</summary>
    public FinishReason? FinishReason { get; init; }
    /// <summary>Set on the last token only: prompt and generation speed.</summary>
    public GenerationTimings? Timings { get; init; }
}
