using Engine.Formats;
using Engine.Formats.Gguf;

namespace Engine.Models;

/// <summary>Builds a <see cref="ModelConfig"/> from GGUF metadata (keys as llama.cpp writes them).</summary>
internal static class GgufModelConfig
{
    public static ModelConfig Read(GgufFile file) => Read(file.Metadata, name => file.TryGetTensorInfo(name, out var info) ? info : null);

    /// <summary>The config of a model in one file or split over several (its tensors may lie in any part).</summary>
    public static ModelConfig Read(GgufModelFiles files) => Read(files.First, files.MoreTensors);

    /// <summary>The config from `file`'s metadata, with the tensors of the model's other parts in `moreTensors`.</summary>
    public static ModelConfig Read(GgufFile file, IEnumerable<GgufTensorInfo> moreTensors)
    {
        var more = moreTensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        return Read(file.Metadata, name => file.TryGetTensorInfo(name, out var info) ? info : more.GetValueOrDefault(name));
    }

    /// <summary>`tensor` finds a tensor's header entry by name (null when the model has none): the config reads a few
    /// (output.weight for tied embeddings, rope_freqs.weight, token_embd.weight's shape).</summary>
    static ModelConfig Read(IReadOnlyDictionary<string, GgufValue> md, Func<string, GgufTensorInfo?> tensor)
    {
        string arch = md.GetString(GgufKeys.Architecture);
        var traits = ArchitectureTraits.Get(arch);
        string K(string suffix) => GgufKeys.Arch(arch, suffix);

        int embd = Int(md, K("embedding_length"));
        int heads = Int(md, K("attention.head_count"));
        int kvHeads = IntOr(md, K("attention.head_count_kv"), heads);
        int headDim = IntOr(md, K("attention.key_length"), heads > 0 ? embd / heads : 0);
        int valueDim = IntOr(md, K("attention.value_length"), headDim);
        int vocab = VocabSize(md, tensor, arch);
        var scaling = ReadScaling(md, arch, tensor);
        int feedForward = Int(md, K("feed_forward_length"));
        // llama.cpp reads expert_count for every architecture; a dense one simply has none.
        int experts = traits.Experts == ExpertLayout.None ? 0 : CountOrZero(md, K("expert_count"));
        int used = experts > 0 ? CountOrZero(md, K("expert_used_count")) : 0;

        var config = new ModelConfig
        {
            Architecture = arch,
            EmbeddingLength = embd,
            LayerCount = Int(md, K("block_count")),
            HeadCount = heads,
            KvHeadCount = kvHeads,
            HeadDim = headDim,
            ValueHeadDim = valueDim,
            FeedForwardLength = feedForward,
            VocabSize = vocab,
            TrainedContextLength = Int(md, K("context_length")),
            RmsNormEpsilon = (float)(md.GetFloatOrNull(K("attention.layer_norm_rms_epsilon")) ?? throw GgufMetadataAccess.Missing(K("attention.layer_norm_rms_epsilon"))),
            RopeTheta = md.GetFloatOrNull(K("rope.freq_base")) ?? 10000.0,
            RopeDimensions = IntOr(md, K("rope.dimension_count"), headDim),
            RopeStyle = traits.GgufRopeStyle,
            RopeScaling = scaling,
            TiedOutput = tensor("output.weight") is null,
            ExpertCount = experts,
            ExpertsPerToken = used,
            ExpertFeedForwardLength = experts == 0 ? 0 : ExpertFeedForwardLength(md, arch, traits, feedForward, used),
            SharedExpertFeedForwardLength = experts > 0 && traits.SharedExpert ? IntOr(md, K("expert_shared_feed_forward_length"), feedForward) : 0,
            NormalizeExpertWeights = traits.NormalizesExpertWeights,
            ExpertGating = ExpertGating.Softmax, // llama.cpp's fixed choice for llama, qwen2moe and qwen3moe
        };
        ModelConfigValidation.Validate(config);
        return config;
    }

    static RopeScaling ReadScaling(IReadOnlyDictionary<string, GgufValue> md, string arch, Func<string, GgufTensorInfo?> tensor)
    {
        string K(string suffix) => GgufKeys.Arch(arch, suffix);
        string? type = md.GetStringOrNull(K("rope.scaling.type"));
        double factor = md.GetFloatOrNull(K("rope.scaling.factor")) ?? 0;
        // Older files state only a linear factor.
        if (type is null && md.GetFloatOrNull(K("rope.scale_linear")) is double linear) { type = "linear"; factor = linear; }
        int original = (int)(md.GetIntegerOrNull(K("rope.scaling.original_context_length")) ?? 0);
        // Llama 3.1+ GGUFs carry their frequency factors precomputed in a rope_freqs tensor instead of a scaling type.
        if (tensor("rope_freqs.weight") is not null) return new RopeScaling(RopeScalingType.Llama3);
        switch (type)
        {
            case null or "none": return RopeScaling.None;
            case "linear":
                if (!(factor > 0) || double.IsInfinity(factor)) throw Bad(K("rope.scaling.factor"), "> 0", factor.ToString());
                return new RopeScaling(RopeScalingType.Linear, factor);
            case "yarn":
                if (!(factor > 0) || double.IsInfinity(factor)) throw Bad(K("rope.scaling.factor"), "> 0", factor.ToString());
                return new RopeScaling(RopeScalingType.Yarn, factor, original,
                    YarnBetaFast: md.GetFloatOrNull(K("rope.scaling.yarn_beta_fast")) ?? 32,
                    YarnBetaSlow: md.GetFloatOrNull(K("rope.scaling.yarn_beta_slow")) ?? 1,
                    YarnAttentionFactor: md.GetFloatOrNull(K("rope.scaling.attn_factor")) ?? 0);
            default:
                throw new ModelFormatException(FormatErrorKind.InvalidConfig, $"unsupported RoPE scaling type '{type}' (supported: none, linear, yarn)",
                    field: K("rope.scaling.type"), actual: type);
        }
    }

    /// <summary>As llama.cpp: Mixtral's experts are feed_forward_length wide; the Qwen MoEs give
    /// expert_feed_forward_length, falling back to feed_forward_length / expert_used_count.</summary>
    static int ExpertFeedForwardLength(IReadOnlyDictionary<string, GgufValue> md, string arch, ArchitectureTraits traits, int feedForward, int used)
    {
        if (traits == ArchitectureTraits.Llama) return feedForward;
        return IntOr(md, GgufKeys.Arch(arch, "expert_feed_forward_length"), used > 0 ? feedForward / used : 0);
    }

    /// <summary>A count that may be absent or 0 (llama files often write expert_count = 0); validation checks
    /// the relations afterwards.</summary>
    static int CountOrZero(IReadOnlyDictionary<string, GgufValue> md, string key) =>
        md.GetIntegerOrNull(key) is long v ? (v is >= 0 and <= int.MaxValue ? (int)v : throw Bad(key, "a non-negative 32-bit integer", v.ToString())) : 0;

    static int VocabSize(IReadOnlyDictionary<string, GgufValue> md, Func<string, GgufTensorInfo?> tensor, string arch)
    {
        if (md.GetIntegerOrNull(GgufKeys.Arch(arch, "vocab_size")) is long n) return CheckInt(n, GgufKeys.Arch(arch, "vocab_size"));
        if (md.GetArrayOrNull<string>(GgufKeys.Tokens) is { } tokens) return tokens.Length;
        if (tensor("token_embd.weight") is { } embd && embd.Shape.Count >= 2) return CheckInt(embd.Shape[1], "token_embd.weight");
        throw GgufMetadataAccess.Missing(GgufKeys.Tokens);
    }

    static int Int(IReadOnlyDictionary<string, GgufValue> md, string key) => CheckInt(md.GetInteger(key), key);

    static int IntOr(IReadOnlyDictionary<string, GgufValue> md, string key, int fallback) =>
        md.GetIntegerOrNull(key) is long v ? CheckInt(v, key) : fallback;

    static int CheckInt(long value, string key) =>
        value is > 0 and <= int.MaxValue ? (int)value : throw Bad(key, "a positive 32-bit integer", value.ToString());

    static ModelFormatException Bad(string key, string expected, string actual) =>
        new(FormatErrorKind.InvalidConfig, $"hyperparameter '{key}' is out of range", field: key, expected: expected, actual: actual);
}
