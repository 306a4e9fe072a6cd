namespace Engine.Sampling;

/// <summary>
/// Repetition, presence and frequency penalties over the last N tokens, as llama.cpp applies them
/// (llama_sampler_penalties_apply): each distinct token in the window is penalized once, using its count.
/// </summary>
internal static class Penalties
{
    /// <summary>True when the options change no logit, so the caller can skip the window scan.</summary>
    public static bool AreOff(SamplerOptions o) =>
        o.PenaltyLastN == 0 || (o.RepetitionPenalty == 1f && o.PresencePenalty == 0f && o.FrequencyPenalty == 0f);

    /// <summary>
    /// Applies the penalties in place. <paramref name="counts"/> is scratch of vocabulary length that must be all
    /// zero on entry; it is all zero again on return (so the sampler can keep one buffer and never clear it).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A recent token id is outside the vocabulary.</exception>
    public static void Apply(Span<float> logits, ReadOnlySpan<int> recentTokens, SamplerOptions o, Span<int> counts)
    {
        if (AreOff(o)) return;
        var window = recentTokens[^Math.Min(o.PenaltyLastN, recentTokens.Length)..];

        // Validate first: a bad id found half-way would leave non-zero counts behind.
        foreach (var id in window)
            if ((uint)id >= (uint)logits.Length)
                throw new ArgumentOutOfRangeException(nameof(recentTokens), id, $"recent token id outside the vocabulary [0, {logits.Length})");

        foreach (var id in window) counts[id]++;

        foreach (var id in window)
        {
            var count = counts[id];
            if (count == 0) continue; // this token was already penalized
            counts[id] = 0;

            ref var logit = ref logits[id];
            // Dividing a negative logit would make it *more* likely, hence the sign split (CTRL paper, llama.cpp).
            logit = logit <= 0f ? logit * o.RepetitionPenalty : logit / o.RepetitionPenalty;
            logit -= count * o.FrequencyPenalty + o.PresencePenalty; // OpenAI: presence applies once if count > 0
        }
    }
}
