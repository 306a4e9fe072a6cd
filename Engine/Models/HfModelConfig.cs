using Engine.Formats;
using Engine.Formats.HuggingFace;

namespace Engine.Models;

/// <summary>Builds a <see cref="ModelConfig"/> from a Hugging Face config.json. Hugging Face checkpoints keep
/// q and k in the rotate-half order, so RoPE is NeoX-style for every architecture here (llama.cpp instead
/// permutes llama's q/k rows into adjacent pairs when it writes GGUF).</summary>
internal static class HfModelConfig
{
    static readonly Dictionary<string, string> ArchitectureByModelType = new()
    {
        ["llama"] = "llama", ["mistral"] = "llama", ["mixtral"] = "llama", ["qwen2"] = "qwen2", ["qwen3"] = "qwen3",
        ["qwen2_moe"] = "qwen2moe", ["qwen3_moe"] = "qwen3moe",
    };

    public static ModelConfig Read(HfConfig hf, bool hasLmHead)
    {
        if (!ArchitectureByModelType.TryGetValue(hf.ModelType, out var arch))
            throw new ModelFormatException(FormatErrorKind.InvalidConfig,
                $"unsupported model_type '{hf.ModelType}' (supported: {string.Join(", ", ArchitectureByModelType.Keys)})", field: "model_type", actual: hf.ModelType);
        int headDim = hf.EffectiveHeadDim;
        var config = new ModelConfig
        {
            Architecture = arch,
            EmbeddingLength = hf.HiddenSize,
            LayerCount = hf.NumHiddenLayers,
            HeadCount = hf.NumAttentionHeads,
            KvHeadCount = hf.NumKeyValueHeads,
            HeadDim = headDim,
            ValueHeadDim = headDim,
            FeedForwardLength = hf.IntermediateSize,
            VocabSize = hf.VocabSize,
            TrainedContextLength = hf.MaxPositionEmbeddings,
            RmsNormEpsilon = (float)hf.RmsNormEps,
            RopeTheta = hf.RopeTheta,
            RopeDimensions = headDim,
            RopeStyle = RopeStyle.NeoX,
            RopeScaling = Scaling(hf),
            TiedOutput = hf.TieWordEmbeddings || !hasLmHead,
        };
        if (hf.IsMoe) config = WithExperts(config, hf);
        ModelConfigValidation.Validate(config);
        return config;
    }

    /// <summary>The mixture-of-experts fields as transformers reads them: Mixtral's experts are intermediate_size
    /// wide and always renormalized; the Qwen MoEs give moe_intermediate_size, renormalize only with
    /// norm_topk_prob (default false), and make layer i sparse unless it is in mlp_only_layers or
    /// (i + 1) is not a multiple of decoder_sparse_step.</summary>
    static ModelConfig WithExperts(ModelConfig config, HfConfig hf)
    {
        bool mixtral = config.Architecture == "llama";
        int step = hf.DecoderSparseStep ?? 1;
        var dense = Enumerable.Range(0, hf.NumHiddenLayers)
            .Where(layer => !mixtral && (hf.MlpOnlyLayers.Contains(layer) || (layer + 1) % step != 0)).ToArray();
        return config with
        {
            ExpertCount = hf.NumExperts!.Value,
            ExpertsPerToken = hf.NumExpertsPerTok ?? 0,
            ExpertFeedForwardLength = mixtral ? hf.IntermediateSize : hf.MoeIntermediateSize ?? 0,
            SharedExpertFeedForwardLength = config.Architecture == "qwen2moe" ? hf.SharedExpertIntermediateSize ?? 0 : 0,
            NormalizeExpertWeights = mixtral || (hf.NormTopkProb ?? false),
            ExpertGating = ExpertGating.Softmax,
            DenseLayers = dense,
        };
    }

    static RopeScaling Scaling(HfConfig hf)
    {
        var s = hf.RopeScaling;
        if (s is null) return RopeScaling.None;
        string type = s.RopeType ?? "default";
        double factor = s.Factor ?? 1;
        int original = s.OriginalMaxPositionEmbeddings ?? 0;
        return type switch
        {
            "default" => RopeScaling.None,
            "linear" => new RopeScaling(RopeScalingType.Linear, factor),
            "yarn" => new RopeScaling(RopeScalingType.Yarn, factor, original, YarnBetaFast: s.BetaFast ?? 32, YarnBetaSlow: s.BetaSlow ?? 1,
                YarnAttentionFactor: s.AttentionFactor ?? 0),
            "llama3" => new RopeScaling(RopeScalingType.Llama3, factor, original, s.LowFreqFactor ?? 1, s.HighFreqFactor ?? 4),
            _ => throw new ModelFormatException(FormatErrorKind.InvalidConfig, $"unsupported rope_scaling type '{type}' (supported: default, linear, yarn, llama3)",
                field: "rope_scaling.rope_type", actual: type),
        };
    }

    /// <summary>Llama 3.1's per-pair frequency divisors, computed as llama.cpp's converter does when it writes
    /// rope_freqs into a GGUF: high frequencies unchanged, low ones divided by the factor, a smooth ramp between.</summary>
    public static float[] Llama3FrequencyFactors(ModelConfig c)
    {
        var s = c.RopeScaling;
        double lowWavelength = s.OriginalContextLength / s.LowFrequencyFactor;
        double highWavelength = s.OriginalContextLength / s.HighFrequencyFactor;
        var factors = new float[c.RopeDimensions / 2];
        for (int i = 0; i < factors.Length; i++)
        {
            double frequency = 1.0 / Math.Pow(c.RopeTheta, 2.0 * i / c.RopeDimensions);
            double wavelength = 2 * Math.PI / frequency;
            if (wavelength < highWavelength) factors[i] = 1;
            else if (wavelength > lowWavelength) factors[i] = (float)s.Factor;
            else
            {
                double smooth = (s.OriginalContextLength / wavelength - s.LowFrequencyFactor) / (s.HighFrequencyFactor - s.LowFrequencyFactor);
                factors[i] = (float)(1 / ((1 - smooth) / s.Factor + smooth));
            }
        }
        return factors;
    }
}
