namespace Engine.Models;

/// <summary>Turns one token's router logits into its chosen experts and their weights, as llama.cpp's
/// build_moe_ffn does:
///   probabilities = softmax(logits)  (or sigmoid)
///   chosen        = the k most probable experts, most probable first
///   weights       = their probabilities, divided by their sum when the model renormalizes
/// Small host-side arithmetic (n_expert values per token); the expert matmuls are where the time goes.</summary>
internal static class ExpertRouter
{
    /// <summary>llama.cpp clamps the sum of the chosen probabilities to the smallest normal F16 before dividing.</summary>
    const float MinimumWeightSum = 6.103515625e-5f;

    public static void Probabilities(ReadOnlySpan<float> logits, ExpertGating gating, Span<float> probabilities)
    {
        if (gating == ExpertGating.Sigmoid)
        {
            for (int e = 0; e < logits.Length; e++) probabilities[e] = 1f / (1f + MathF.Exp(-logits[e]));
            return;
        }
        // ggml's softmax: subtract the maximum, exponentiate, sum in double, multiply by the float reciprocal.
        float max = float.NegativeInfinity;
        foreach (float logit in logits) max = Math.Max(max, logit);
        double sum = 0;
        for (int e = 0; e < logits.Length; e++)
        {
            probabilities[e] = MathF.Exp(logits[e] - max);
            sum += probabilities[e];
        }
        float scale = (float)(1.0 / sum);
        for (int e = 0; e < logits.Length; e++) probabilities[e] *= scale;
    }

    /// <summary>The chosen.Length most probable experts, in descending probability. Equal probabilities keep the
    /// lower expert first: llama.cpp sorts with std::sort, which for up to 16 experts is an insertion sort and so
    /// keeps index order (beyond 16 its order among exact ties is unspecified).</summary>
    public static void TopK(ReadOnlySpan<float> probabilities, Span<int> chosen)
    {
        for (int slot = 0; slot < chosen.Length; slot++)
        {
            int best = -1;
            for (int e = 0; e < probabilities.Length; e++)
            {
                if (chosen[..slot].Contains(e)) continue;
                if (best < 0 || probabilities[e] > probabilities[best]) best = e; // strict: ties keep the lower index
            }
            chosen[slot] = best;
        }
    }

    /// <summary>The chosen experts' probabilities, rescaled to sum to 1 when normalize is set.</summary>
    public static void Weights(ReadOnlySpan<float> probabilities, ReadOnlySpan<int> chosen, bool normalize, Span<float> weights)
    {
        for (int slot = 0; slot < chosen.Length; slot++) weights[slot] = probabilities[chosen[slot]];
        if (!normalize) return;
        double sum = 0;
        foreach (float w in weights[..chosen.Length]) sum += w;
        float divisor = Math.Max((float)sum, MinimumWeightSum);
        for (int slot = 0; slot < chosen.Length; slot++) weights[slot] /= divisor;
    }
}
