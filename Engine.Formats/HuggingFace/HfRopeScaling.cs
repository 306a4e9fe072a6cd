namespace Engine.Formats.HuggingFace;

/// <summary>The <c>rope_scaling</c> object of config.json (or the scaling part of transformers 5's
/// <c>rope_parameters</c>). Which fields matter depends on <see cref="RopeType"/>: "linear" and "dynamic" use
/// Factor; "llama3" adds LowFreqFactor, HighFreqFactor and OriginalMaxPositionEmbeddings; "yarn" adds BetaFast,
/// BetaSlow, AttentionFactor (and DeepSeek's MScale / MScaleAllDim); "longrope" uses ShortFactor / LongFactor.</summary>
public sealed record HfRopeScaling
{
    /// <summary>rope_type, or the older spelling "type" (both given must agree): "linear", "dynamic", "llama3",
    /// "yarn", "longrope", ...</summary>
    public string? RopeType { get; init; }
    /// <summary>How much the context is stretched ("factor"); positive.</summary>
    public double? Factor { get; init; }
    /// <summary>The context length before scaling ("original_max_position_embeddings"); at least 1, and at most the
    /// config's max_position_embeddings.</summary>
    public int? OriginalMaxPositionEmbeddings { get; init; }
    /// <summary>llama3: wavelengths above original length / low_freq_factor are scaled fully ("low_freq_factor"); positive.</summary>
    public double? LowFreqFactor { get; init; }
    /// <summary>llama3: wavelengths below original length / high_freq_factor are kept ("high_freq_factor"); positive.</summary>
    public double? HighFreqFactor { get; init; }
    /// <summary>yarn: rotations above which dimensions are extrapolated ("beta_fast").</summary>
    public double? BetaFast { get; init; }
    /// <summary>yarn: rotations below which dimensions are interpolated ("beta_slow").</summary>
    public double? BetaSlow { get; init; }
    /// <summary>yarn / longrope: scale applied to the attention logits ("attention_factor").</summary>
    public double? AttentionFactor { get; init; }
    /// <summary>DeepSeek yarn: the mscale coefficient ("mscale").</summary>
    public double? MScale { get; init; }
    /// <summary>DeepSeek yarn: the mscale applied to all dimensions ("mscale_all_dim").</summary>
    public double? MScaleAllDim { get; init; }
    /// <summary>longrope: per-dimension factors for contexts up to the original length ("short_factor").</summary>
    public IReadOnlyList<double>? ShortFactor { get; init; }
    /// <summary>longrope: per-dimension factors for longer contexts ("long_factor").</summary>
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
