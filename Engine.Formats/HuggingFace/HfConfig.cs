using System.Text.Json;

namespace Engine.Formats.HuggingFace;

/// <summary>The fields of a Hugging Face <c>config.json</c> that a decoder-only transformer needs, validated
/// (checklist S9 / M2): types are strict, sizes are positive, head counts divide, MoE settings agree. Unknown
/// fields are ignored. Names in errors are the JSON names, which each property's docs give in parentheses.
/// <see cref="Load"/> and <see cref="Parse(string, string?)"/> validate; a config built in code with an object
/// initializer is not checked.</summary>
public sealed record HfConfig
{
    /// <summary>config.json is a few KB; anything near this is not a config.</summary>
    public const long MaxFileLength = 16 << 20;

    /// <summary>The model classes the checkpoint was saved from ("architectures"), e.g. "Qwen2ForCausalLM"; may be empty.</summary>
    public IReadOnlyList<string> Architectures { get; init; } = [];
    /// <summary>The model family ("model_type"), e.g. "llama", "qwen2", "qwen3_moe". Required.</summary>
    public required string ModelType { get; init; }
    /// <summary>Width of the residual stream ("hidden_size"); at least 1.</summary>
    public required int HiddenSize { get; init; }
    /// <summary>Width of the dense feed-forward layers ("intermediate_size"); at least 1.</summary>
    public required int IntermediateSize { get; init; }
    /// <summary>Number of transformer blocks ("num_hidden_layers"); at least 1.</summary>
    public required int NumHiddenLayers { get; init; }
    /// <summary>Number of query heads ("num_attention_heads"); at least 1, and divides hidden_size unless head_dim is given.</summary>
    public required int NumAttentionHeads { get; init; }
    /// <summary>Number of key/value heads ("num_key_value_heads"); a divisor of NumAttentionHeads. Defaults to
    /// NumAttentionHeads (plain multi-head attention) when absent.</summary>
    public required int NumKeyValueHeads { get; init; }
    /// <summary>Width of one attention head ("head_dim"), given explicitly by some models (Qwen3: head_dim x heads != hidden_size); see <see cref="EffectiveHeadDim"/>.</summary>
    public int? HeadDim { get; init; }
    /// <summary>Number of tokens ("vocab_size"); at least 1. Token ids in this config are below it.</summary>
    public required int VocabSize { get; init; }
    /// <summary>The context length the model was trained for ("max_position_embeddings"); at least 1.</summary>
    public required int MaxPositionEmbeddings { get; init; }
    /// <summary>Epsilon of the RMS norms ("rms_norm_eps"); positive. Required.</summary>
    public required double RmsNormEps { get; init; }
    /// <summary>RoPE base frequency ("rope_theta", or rope_parameters.rope_theta in transformers 5); positive.
    /// Defaults to 10000 (the original RoPE base).</summary>
    public double RopeTheta { get; init; } = 10000;
    /// <summary>RoPE scaling ("rope_scaling", or the scaling part of "rope_parameters"); null for plain RoPE.</summary>
    public HfRopeScaling? RopeScaling { get; init; }
    /// <summary>Whether the output projection reuses the token embedding ("tie_word_embeddings"); false when absent.</summary>
    public bool TieWordEmbeddings { get; init; }
    /// <summary>Beginning-of-sequence token id ("bos_token_id"), below VocabSize; null when absent.</summary>
    public int? BosTokenId { get; init; }
    /// <summary>eos_token_id as a list: a single id, several, or none; each below VocabSize.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    /// <summary>torch_dtype (or transformers 5's "dtype"): the precision the weights were saved in.</summary>
    public string? TorchDtype { get; init; }
    /// <summary>Whether the attention projections have biases ("attention_bias"); null when the config does not say.</summary>
    public bool? AttentionBias { get; init; }

    // ---- mixture of experts (Qwen2-MoE / Qwen3-MoE: num_experts; Mixtral: num_local_experts)
    /// <summary>Number of routed experts ("num_experts", or Mixtral's "num_local_experts"; both given must agree);
    /// null or 0 for a dense model.</summary>
    public int? NumExperts { get; init; }
    /// <summary>Experts each token is routed to ("num_experts_per_tok"); required for a MoE model, at most NumExperts.</summary>
    public int? NumExpertsPerTok { get; init; }
    /// <summary>Width of one expert's feed-forward layer ("moe_intermediate_size").</summary>
    public int? MoeIntermediateSize { get; init; }
    /// <summary>Width of the shared expert ("shared_expert_intermediate_size", Qwen2-MoE); 0 or null for none.</summary>
    public int? SharedExpertIntermediateSize { get; init; }
    /// <summary>Whether the top-k routing weights are renormalized to sum to 1 ("norm_topk_prob").</summary>
    public bool? NormTopkProb { get; init; }
    /// <summary>Every how many layers a MoE block replaces the dense one ("decoder_sparse_step"); at least 1.</summary>
    public int? DecoderSparseStep { get; init; }
    /// <summary>Layers that keep a dense feed-forward in a MoE model ("mlp_only_layers"); each below NumHiddenLayers.</summary>
    public IReadOnlyList<int> MlpOnlyLayers { get; init; } = [];

    /// <summary>head_dim, or hidden_size / num_attention_heads when the config does not give it.</summary>
    public int EffectiveHeadDim => HeadDim ?? HiddenSize / NumAttentionHeads;
    /// <summary>True when the model has routed experts (NumExperts above 0).</summary>
    public bool IsMoe => NumExperts is > 0;

    /// <summary>Reads and validates <c>config.json</c> from a file, or from a model folder.</summary>
    /// <param name="path">The config.json file, or the folder holding it.</param>
    /// <exception cref="ModelFormatException">The file cannot be opened (kind Io) or is over 16 MiB (LengthTooLarge),
    /// or its content is invalid (see <see cref="Parse(ReadOnlySpan{byte}, string?)"/>).</exception>
    public static HfConfig Load(string path)
    {
        if (Directory.Exists(path)) path = Path.Combine(path, "config.json");
        using var region = MappedRegion.OpenFile(path);
        if (region.Length > MaxFileLength)
            throw new ModelFormatException(FormatErrorKind.LengthTooLarge, "config.json is over the size cap", null, 0,
                $"<= {MaxFileLength} bytes", $"{region.Length} bytes", path);
        return Parse(region.Span(0, region.Length), path);
    }

    /// <summary>Validates config JSON given as a string; errors name no file.</summary>
    /// <param name="json">The content of a config.json.</param>
    /// <exception cref="ModelFormatException">The content is invalid (see <see cref="Parse(ReadOnlySpan{byte}, string?)"/>).</exception>
    public static HfConfig Parse(string json) => Parse(json, null);

    /// <summary>Validates config JSON given as a string.</summary>
    /// <param name="json">The content of a config.json.</param>
    /// <param name="filePath">The file to name in errors, or null.</param>
    /// <exception cref="ModelFormatException">The content is invalid (see <see cref="Parse(ReadOnlySpan{byte}, string?)"/>).</exception>
    public static HfConfig Parse(string json, string? filePath) =>
        Parse(System.Text.Encoding.UTF8.GetBytes(json), filePath);

    /// <summary>Validates config JSON given as UTF-8 bytes: one JSON object without duplicate properties, each known
    /// field of the right JSON type and in range, and the relations between fields as each property describes.</summary>
    /// <param name="json">The content of a config.json.</param>
    /// <param name="filePath">The file to name in errors, or null.</param>
    /// <exception cref="ModelFormatException">Invalid UTF-8 or Unicode (kind InvalidUtf8); a duplicate property
    /// (Duplicate); a required field missing (MissingKey); invalid JSON, or a field of the wrong type, out of range
    /// or inconsistent with another (InvalidConfig). The error names the JSON field.</exception>
    public static HfConfig Parse(ReadOnlySpan<byte> json, string? filePath)
    {
        if (!System.Text.Unicode.Utf8.IsValid(json))
            throw new ModelFormatException(FormatErrorKind.InvalidUtf8, "config.json is not valid UTF-8", filePath: filePath);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 64 }); }
        catch (JsonException e)
        {
            throw new ModelFormatException(FormatErrorKind.InvalidConfig, $"config.json is not valid JSON: {e.Message}",
                filePath: filePath, inner: e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException(FormatErrorKind.InvalidConfig, "config.json must hold a JSON object", null, null,
                    "object", doc.RootElement.ValueKind.ToString(), filePath);
            // JsonDocument keeps duplicate properties (lookups see one of them); F7 wants them rejected.
            RejectDuplicates(doc.RootElement, "", filePath);
            try { return Read(new JsonConfigReader(doc.RootElement, filePath)); }
            catch (InvalidOperationException e)
            {
                // GetString on an escape that decodes to a lone surrogate.
                throw new ModelFormatException(FormatErrorKind.InvalidUtf8, $"config string is not valid Unicode: {e.Message}",
                    filePath: filePath, inner: e);
            }
        }
    }

    static HfConfig Read(JsonConfigReader r)
    {
        var ropeParameters = r.Object("rope_parameters"); // transformers 5 moves rope_theta and scaling here
        var scaling = r.Object("rope_scaling") ?? (ropeParameters?.String("rope_type") is { } t && t != "default" ? ropeParameters : null);
        int heads = r.RequiredInt("num_attention_heads", 1);
        var config = new HfConfig
        {
            Architectures = r.StringArray("architectures") ?? [],
            ModelType = r.String("model_type") ?? throw r.Missing("model_type"),
            HiddenSize = r.RequiredInt("hidden_size", 1),
            IntermediateSize = r.RequiredInt("intermediate_size", 1),
            NumHiddenLayers = r.RequiredInt("num_hidden_layers", 1),
            NumAttentionHeads = heads,
            NumKeyValueHeads = r.Int("num_key_value_heads", 1) ?? heads,
            HeadDim = r.Int("head_dim", 1),
            VocabSize = r.RequiredInt("vocab_size", 1),
            MaxPositionEmbeddings = r.RequiredInt("max_position_embeddings", 1),
            RmsNormEps = r.Positive("rms_norm_eps") ?? throw r.Missing("rms_norm_eps"),
            RopeTheta = r.Positive("rope_theta") ?? ropeParameters?.Positive("rope_theta") ?? 10000,
            RopeScaling = scaling is null ? null : HfRopeScaling.Read(scaling),
            TieWordEmbeddings = r.Bool("tie_word_embeddings") ?? false,
            BosTokenId = TokenIds(r, "bos_token_id") is { } bos ? (bos.Count == 1 ? bos[0]
                : throw r.OutOfRange("bos_token_id", "a single token id", $"{bos.Count} ids")) : null,
            EosTokenIds = TokenIds(r, "eos_token_id") ?? [],
            TorchDtype = r.String("torch_dtype") ?? r.String("dtype"),
            AttentionBias = r.Bool("attention_bias"),
            NumExperts = Experts(r),
            NumExpertsPerTok = r.Int("num_experts_per_tok", 1),
            MoeIntermediateSize = r.Int("moe_intermediate_size", 1),
            SharedExpertIntermediateSize = r.Int("shared_expert_intermediate_size", 0),
            NormTopkProb = r.Bool("norm_topk_prob"),
            DecoderSparseStep = r.Int("decoder_sparse_step", 1),
            MlpOnlyLayers = Ints(r, "mlp_only_layers") ?? [],
        };
        config.Validate(r);
        return config;
    }

    /// <summary>M2/M6: the relations between fields, each failure naming the field and the values involved.</summary>
    void Validate(JsonConfigReader r)
    {
        if (NumKeyValueHeads > NumAttentionHeads || NumAttentionHeads % NumKeyValueHeads != 0)
            throw r.OutOfRange("num_key_value_heads", $"a divisor of num_attention_heads ({NumAttentionHeads})",
                NumKeyValueHeads.ToString());
        if (HeadDim is null && HiddenSize % NumAttentionHeads != 0)
            throw r.OutOfRange("num_attention_heads", $"a divisor of hidden_size ({HiddenSize}) when head_dim is absent",
                NumAttentionHeads.ToString());
        if (BosTokenId is { } bos && bos >= VocabSize)
            throw r.OutOfRange("bos_token_id", $"< vocab_size ({VocabSize})", bos.ToString());
        foreach (int eos in EosTokenIds)
            if (eos >= VocabSize) throw r.OutOfRange("eos_token_id", $"< vocab_size ({VocabSize})", eos.ToString());
        if (RopeScaling?.OriginalMaxPositionEmbeddings is { } original && original > MaxPositionEmbeddings)
            throw r.OutOfRange("rope_scaling.original_max_position_embeddings",
                $"<= max_position_embeddings ({MaxPositionEmbeddings})", original.ToString());
        foreach (int layer in MlpOnlyLayers)
            if (layer >= NumHiddenLayers)
                throw r.OutOfRange("mlp_only_layers", $"layer indices < num_hidden_layers ({NumHiddenLayers})", layer.ToString());
        if (IsMoe)
        {
            if (NumExpertsPerTok is not { } used)
                throw r.Missing("num_experts_per_tok");
            if (used > NumExperts)
                throw r.OutOfRange("num_experts_per_tok", $"<= the number of experts ({NumExperts})", used.ToString());
        }
    }

    /// <summary>num_experts (Qwen-MoE) or num_local_experts (Mixtral); 0 means dense. Both given must agree.</summary>
    static int? Experts(JsonConfigReader r)
    {
        int? experts = r.Int("num_experts", 0), local = r.Int("num_local_experts", 0);
        if (experts is not null && local is not null && experts != local)
            throw r.OutOfRange("num_local_experts", $"the same as num_experts ({experts})", local.Value.ToString());
        return experts ?? local;
    }

    /// <summary>Token ids: an int or an array of ints, each in [0, int.MaxValue] (the vocab check comes later).</summary>
    static IReadOnlyList<int>? TokenIds(JsonConfigReader r, string name)
    {
        var ids = r.IntegerOrArray(name);
        if (ids is null) return null;
        var result = new int[ids.Count];
        for (int i = 0; i < ids.Count; i++)
            result[i] = ids[i] is >= 0 and <= int.MaxValue ? (int)ids[i]
                : throw r.OutOfRange(name, "token ids >= 0", ids[i].ToString());
        return result;
    }

    static IReadOnlyList<int>? Ints(JsonConfigReader r, string name)
    {
        var values = r.IntegerArray(name);
        if (values is null) return null;
        var result = new int[values.Count];
        for (int i = 0; i < values.Count; i++)
            result[i] = values[i] is >= 0 and <= int.MaxValue ? (int)values[i]
                : throw r.OutOfRange(name, "non-negative integers", values[i].ToString());
        return result;
    }

    static void RejectDuplicates(JsonElement element, string path, string? filePath)
    {
        if (element.ValueKind == JsonValueKind.Object)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in element.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                    throw new ModelFormatException(FormatErrorKind.Duplicate, "config.json has a property twice",
                        path + property.Name, filePath: filePath);
                RejectDuplicates(property.Value, path + property.Name + ".", filePath);
            }
        }
        else if (element.ValueKind == JsonValueKind.Array)
        {
            int i = 0;
            foreach (var item in element.EnumerateArray()) RejectDuplicates(item, $"{path.TrimEnd('.')}[{i++}].", filePath);
        }
    }
}
