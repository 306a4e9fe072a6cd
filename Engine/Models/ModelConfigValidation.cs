using Engine.Formats;

namespace Engine.Models;

/// <summary>Hyperparameter consistency checks (checklist M2), shared by every config source.</summary>
internal static class ModelConfigValidation
{
    /// <summary>Dimensions beyond this are rejected as absurd: no real model is near it, and it keeps every
    /// derived buffer size far inside 32-bit element counts.</summary>
    const int MaxDimension = 1 << 20;

    public static void Validate(ModelConfig c)
    {
        Positive(c.EmbeddingLength, "embedding_length");
        Positive(c.LayerCount, "block_count");
        Positive(c.HeadCount, "attention.head_count");
        Positive(c.KvHeadCount, "attention.head_count_kv");
        Positive(c.HeadDim, "attention.key_length");
        Positive(c.ValueHeadDim, "attention.value_length");
        Positive(c.FeedForwardLength, "feed_forward_length");
        Positive(c.VocabSize, "vocab_size");
        Positive(c.TrainedContextLength, "context_length");
        if (c.LayerCount > 4096) Fail("block_count", "<= 4096", c.LayerCount.ToString());
        if (c.VocabSize > 16 * MaxDimension) Fail("vocab_size", $"<= {16 * MaxDimension}", c.VocabSize.ToString());
        if (c.HeadCount % c.KvHeadCount != 0)
            Fail("attention.head_count_kv", $"a divisor of head_count {c.HeadCount}", c.KvHeadCount.ToString());
        if ((long)c.HeadCount * c.HeadDim > MaxDimension) Fail("attention.key_length", "head_count x key_length <= 2^20", $"{c.HeadCount} x {c.HeadDim}");
        if (c.RopeDimensions <= 0 || c.RopeDimensions > c.HeadDim || c.RopeDimensions % 2 != 0)
            Fail("rope.dimension_count", $"an even number in [2, {c.HeadDim}]", c.RopeDimensions.ToString());
        if (!(c.RmsNormEpsilon > 0) || !float.IsFinite(c.RmsNormEpsilon))
            Fail("attention.layer_norm_rms_epsilon", "a finite value > 0", c.RmsNormEpsilon.ToString());
        if (!(c.RopeTheta > 0) || !double.IsFinite(c.RopeTheta)) Fail("rope.freq_base", "a finite value > 0", c.RopeTheta.ToString());
        ValidateExperts(c);
    }

    /// <summary>llama.cpp's own limit on experts per layer; no model is near it.</summary>
    public const int MaxExperts = 1024;

    static void ValidateExperts(ModelConfig c)
    {
        var traits = ArchitectureTraits.Get(c.Architecture);
        if (traits.Experts == ExpertLayout.Required && c.ExpertCount == 0)
            Fail("expert_count", $"> 0 (every {c.Architecture} layer is a mixture of experts)", "0");
        if (c.ExpertCount < 0 || c.ExpertCount > MaxExperts) Fail("expert_count", $"in [0, {MaxExperts}]", c.ExpertCount.ToString());
        if (c.ExpertCount == 0)
        {
            if (c.ExpertsPerToken != 0) Fail("expert_used_count", "0 when expert_count is 0", c.ExpertsPerToken.ToString());
            return;
        }
        if (c.ExpertsPerToken <= 0 || c.ExpertsPerToken > c.ExpertCount)
            Fail("expert_used_count", $"in [1, expert_count = {c.ExpertCount}]", c.ExpertsPerToken.ToString());
        Positive(c.ExpertFeedForwardLength, "expert_feed_forward_length");
        if (c.SharedExpertFeedForwardLength < 0 || c.SharedExpertFeedForwardLength > 16 * MaxDimension)
            Fail("expert_shared_feed_forward_length", "a non-negative value", c.SharedExpertFeedForwardLength.ToString());
        if (traits.SharedExpert && c.SharedExpertFeedForwardLength == 0)
            Fail("expert_shared_feed_forward_length", $"> 0 ({c.Architecture} has a shared expert)", "0");
        foreach (int layer in c.DenseLayers)
            if (layer < 0 || layer >= c.LayerCount) Fail("mlp_only_layers", $"layer indices in [0, {c.LayerCount})", layer.ToString());
    }

    static void Positive(int value, string key)
    {
        if (value <= 0 || value > 16 * MaxDimension) Fail(key, "a positive value", value.ToString());
    }

    static void Fail(string key, string expected, string actual) =>
        throw new ModelFormatException(FormatErrorKind.InvalidConfig, $"inconsistent hyperparameter '{key}'", field: key, expected: expected, actual: actual);
}
