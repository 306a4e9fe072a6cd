namespace Engine.Formats.HuggingFace;

/// <summary>The <c>rope_scaling</c> object of config.json (or the scaling part of transformers 5's
/// <c>rope_parameters</c>). Which fields matter depends on <see cref="RopeType"/>: "linear" and "dynamic" use
/// Factor; "llama3" adds LowFreqFactor, HighFreqFactor and OriginalMaxPositionEmbeddings; "yarn" adds BetaFast,
/// BetaSlow, AttentionFactor (and DeepSeek's MScale / MScaleAllDim); "longrope" uses ShortFactor / LongFactor.</summary>
public sealed record HfRopeScaling
{
    /// <summary>rope_type, or the older spelling "type".</summary>
    public string? RopeType { get; init; }
    public double? Factor { get; init; }
    public int? OriginalMaxPositionEmbeddings { get; init; }
    public double? LowFreqFactor { get; init; }
    public double? HighFreqFactor { get; init; }
    public double? BetaFast { get; init; }
    public double? BetaSlow { get; init; }
    public double? AttentionFactor { get; init; }
    public double? MScale { get; init; }
    public double? MScaleAllDim { get; init; }
    public IReadOnlyList<double>? ShortFactor { get; init; }
    public IReadOnlyList<double>? LongFactor { get; init; }

    internal static HfRopeScaling Read(JsonConfigReader r)
    {
        string? type = r.String("rope_type");
        string? oldType = r.String("type");
        if (type is not null && oldType is not null && type != oldType)
            throw r.OutOfRange("rope_type", $"the same value as 'type' ('{oldType}')", type);
        return new HfRopeScaling
        {
            RopeType = type ?? oldType,
            Factor = r.Positive("factor"),
            OriginalMaxPositionEmbeddings = r.Int("original_max_position_embeddings", 1),
            LowFreqFactor = r.Positive("low_freq_factor"),
            HighFreqFactor = r.Positive("high_freq_factor"),
            BetaFast = r.Double("beta_fast"),
            BetaSlow = r.Double("beta_slow"),
            AttentionFactor = r.Double("attention_factor"),
            MScale = r.Double("mscale"),
            MScaleAllDim = r.Double("mscale_all_dim"),
            ShortFactor = r.DoubleArray("short_factor"),
            LongFactor = r.DoubleArray("long_factor"),
        };
    }
}
