using Engine.Sampling;

namespace Engine.Generation;

public sealed record GenerationOptions
{
    /// <summary>Tokens to generate at most; null = until an end-of-generation token or the context is full.</summary>
    public int? MaxTokens { get; init; } = 256;
    public SamplerOptions Sampling { get; init; } = SamplerOptions.LlamaCppDefaults;
    /// <summary>Keep going past end-of-generation tokens (benchmarks, golden comparisons).</summary>
    public bool IgnoreEndOfGeneration { get; init; }
    public IReadOnlyList<string> StopStrings { get; init; } = [];
}

public enum StopReason { MaxTokens, EndOfGeneration, StopString, ContextFull, Cancelled }

public sealed record GenerationResult(
    int[] PromptTokens, int[] GeneratedTokens, string Text, StopReason StopReason,
    TimeSpan PromptTime, TimeSpan GenerationTime)
{
    public double PromptTokensPerSecond => PromptTokens.Length / Math.Max(1e-9, PromptTime.TotalSeconds);
    /// <summary>The first generated token comes from the prompt's logits, so decode speed counts the rest.</summary>
    public double GenerationTokensPerSecond => Math.Max(0, GeneratedTokens.Length - 1) / Math.Max(1e-9, GenerationTime.TotalSeconds);
}
