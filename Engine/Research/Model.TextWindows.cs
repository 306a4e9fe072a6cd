namespace Engine;

public sealed partial class Model
{
    /// <summary>How a whole-text pass cuts its text into windows, for its error messages: what a window is called, the
    /// shortest one it can use (and why), and the llama.cpp tool whose rules it follows.</summary>
    sealed record WindowRules(string Pass, string Window, int MinimumLength, string MinimumReason, string Tool);

    static readonly WindowRules PerplexityWindows =
        new("perplexity", "window", 3, " (the second half of each window is scored)", "llama-perplexity");
    static readonly WindowRules ImportanceMatrixChunks =
        new("an importance matrix", "chunk", 1, "", "llama-imatrix");

    /// <summary>The number of windows of <paramref name="length"/> tokens a pass over <paramref name="ids"/> takes, after
    /// checking the window length against the model, the window count, that the text holds two windows (as llama.cpp's
    /// tools require), and every token id the windows read.</summary>
    int CheckedWindows(int[] ids, int length, int? maxWindows, WindowRules rules)
    {
        if (length < rules.MinimumLength)
            throw new ArgumentOutOfRangeException("options", $"ContextLength must be {rules.MinimumLength} or more{rules.MinimumReason}, got {length}");
        if (length > Info.ContextLength)
            throw new ArgumentOutOfRangeException("options", $"ContextLength {length} is more than the model's context of {Info.ContextLength}: use a shorter {rules.Window} or load the model with a larger ContextLength");
        if (maxWindows is < 1)
            throw new ArgumentOutOfRangeException("options", $"MaxChunks must be 1 or more (null: every {rules.Window}), got {maxWindows}");
        if (ids.Length < 2 * length)
            throw new ArgumentException($"the text is {ids.Length} tokens, but {rules.Pass} with a context of {length} needs at least {2 * length} (two {rules.Window}s, as {rules.Tool} requires): give a longer text or a smaller context", "tokens");
        int windows = Math.Min(ids.Length / length, maxWindows ?? int.MaxValue);
        CheckTokens(ids.AsSpan(0, windows * length), "tokens");
        return windows;
    }

    /// <summary>Every id within the vocabulary; the error names the first one outside it and its position.</summary>
    void CheckTokens(ReadOnlySpan<int> ids, string parameter)
    {
        for (int i = 0; i < ids.Length; i++)
            if ((uint)ids[i] >= (uint)Info.VocabularySize)
                throw new ArgumentOutOfRangeException(parameter, $"token {i} is id {ids[i]}, outside the vocabulary of {Info.VocabularySize}");
    }
}
