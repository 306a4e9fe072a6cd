using System.Text.Json;

namespace Engine.Formats.HuggingFace;

/// <summary>The fields of a Hugging Face <c>config.json</c> that a decoder-only transformer needs, validated
/// (checklist S9 / M2): types are strict, sizes are positive, head counts divide, MoE settings agree. Unknown
/// fields are ignored. Names in errors are the JSON names.</summary>
public sealed record HfConfig
{
    /// <summary>config.json is a few KB; anything near this is not a config.</summary>
    public const long MaxFileLength = 16 << 20;

    public IReadOnlyList<string> Architectures { get; init; } = [];
    public required string ModelType { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required int NumAttentionHeads { get; init; }
    /// <summary>Defaults to NumAttentionHeads (plain multi-head attention) when absent.</summary>
    public required int NumKeyValueHeads { get; init; }
    /// <summary>Given explicitly by some models (Qwen3: head_dim x heads != hidden_size); see <see cref="EffectiveHeadDim"/>.</summary>
    public int? HeadDim { get; init; }
    public required int VocabSize { get; init; }
    public required int MaxPositionEmbeddings { get; init; }
    public required double RmsNormEps { get; init; }
    /// <summary>Defaults to 10000 (the original RoPE base).</summary>
    public double RopeTheta { get; init; } = 10000;
    public HfRopeScaling? RopeScaling { get; init; }
    public bool TieWordEmbeddings { get; init; }
    public int? BosTokenId { get; init; }
    /// <summary>eos_token_id as a list: a single id, several, or none.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    /// <summary>torch_dtype (or transformers 5's "dtype"): the precision the weights were saved in.</summary>
    public string? TorchDtype { get; init; }
    public bool? AttentionBias { get; init; }

    // ---- mixture of experts (Qwen2-MoE / Qwen3-MoE: num_experts; Mixtral: num_local_experts)
    public int? NumExperts { get; init; }
    public int? NumExpertsPerTok { get; init; }
    public int? MoeIntermediateSize { get; init; }
    public int? SharedExpertIntermediateSize { get; init; }
    public bool? NormTopkProb { get; init; }
    public int? DecoderSparseStep { get; init; }
    public IReadOnlyList<int> MlpOnlyLayers { get; init; } = [];

    /// <summary>head_dim, or hidden_size / num_attention_heads when the config does not give it.</summary>
    public int EffectiveHeadDim => HeadDim ?? HiddenSize / NumAttentionHeads;
    public bool IsMoe => NumExperts is > 0;

    /// <summary>Reads <c>config.json</c> from a file, or from a model folder.</summary>
    public static HfConfig Load(string path)
    {
        if (Directory.Exists(path)) path = Path.Combine(path, "config.json");
        using var region = MappedRegion.OpenFile(path);
        if (region.Length > MaxFileLength)
            throw new ModelFormatException(FormatErrorKind.LengthTooLarge, "config.json is over the size cap", null, 0,
                $"<= {MaxFileLength} bytes", $"{region.Length} bytes", path);
        return Parse(region.Span(0, region.Length), path);
    }

    public static HfConfig Parse(string json, string? filePath = null) =>
        Parse(System.Text.Encoding.UTF8.GetBytes(json), filePath);

    public static HfConfig Parse(ReadOnlySpan<byte> json, string? filePath = null)
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
