using Engine.Formats;

namespace Engine.Quantization;

/// <summary>A file type as llama.cpp names it (LLAMA_FTYPE_*): the value written to general.file_type, and the
/// type most weights get. Mixes such as Q4_K_M give some tensors other types (<see cref="TensorTypePlanner"/>).</summary>
internal sealed record QuantizationMix(string Name, uint FileType, GgmlType BaseType)
{
    public bool IsFloat => !BaseType.Info().IsQuantized;
    public override string ToString() => Name;
}

/// <summary>The mixes llama-quantize offers that we can write, one row each, as llama.h numbers them.</summary>
internal static class QuantizationMixes
{
    public static readonly QuantizationMix F32 = new("F32", 0, GgmlType.F32);
    public static readonly QuantizationMix F16 = new("F16", 1, GgmlType.F16);
    public static readonly QuantizationMix Q4_0 = new("Q4_0", 2, GgmlType.Q4_0);
    public static readonly QuantizationMix Q4_1 = new("Q4_1", 3, GgmlType.Q4_1);
    public static readonly QuantizationMix Q8_0 = new("Q8_0", 7, GgmlType.Q8_0);
    public static readonly QuantizationMix Q5_0 = new("Q5_0", 8, GgmlType.Q5_0);
    public static readonly QuantizationMix Q5_1 = new("Q5_1", 9, GgmlType.Q5_1);
    public static readonly QuantizationMix Q2_K = new("Q2_K", 10, GgmlType.Q2_K);
    public static readonly QuantizationMix Q3_K_S = new("Q3_K_S", 11, GgmlType.Q3_K);
    public static readonly QuantizationMix Q3_K_M = new("Q3_K_M", 12, GgmlType.Q3_K);
    public static readonly QuantizationMix Q3_K_L = new("Q3_K_L", 13, GgmlType.Q3_K);
    public static readonly QuantizationMix Q4_K_S = new("Q4_K_S", 14, GgmlType.Q4_K);
    public static readonly QuantizationMix Q4_K_M = new("Q4_K_M", 15, GgmlType.Q4_K);
    public static readonly QuantizationMix Q5_K_S = new("Q5_K_S", 16, GgmlType.Q5_K);
    public static readonly QuantizationMix Q5_K_M = new("Q5_K_M", 17, GgmlType.Q5_K);
    public static readonly QuantizationMix Q6_K = new("Q6_K", 18, GgmlType.Q6_K);
    public static readonly QuantizationMix IQ4_NL = new("IQ4_NL", 25, GgmlType.IQ4_NL);
    public static readonly QuantizationMix IQ4_XS = new("IQ4_XS", 30, GgmlType.IQ4_XS);
    public static readonly QuantizationMix BF16 = new("BF16", 32, GgmlType.BF16);

    /// <summary>Every mix, in llama-quantize's order of its help text (quantized first, then the float types).</summary>
    public static IReadOnlyList<QuantizationMix> All { get; } =
    [
        Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, Q8_0,
        F16, BF16, F32,
    ];

    public static QuantizationMix? Find(string name) =>
        All.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase));

    public static string Names => string.Join(", ", All.Select(m => m.Name));
}

/// <summary>The shape facts of a model that llama.cpp's choice of tensor types reads (from the GGUF metadata).</summary>
/// <param name="Architecture">general.architecture.</param>
/// <param name="LayerCount">{arch}.block_count.</param>
/// <param name="ExpertCount">{arch}.expert_count, 0 for a dense model.</param>
/// <param name="HeadCount">{arch}.attention.head_count (of the first layer).</param>
/// <param name="KvHeadCount">{arch}.attention.head_count_kv (of the first layer; the head count when absent).</param>
internal sealed record ModelShape(string Architecture, int LayerCount, int ExpertCount, int HeadCount, int KvHeadCount)
{
    /// <summary>hparams.n_gqa(): query heads per KV head.</summary>
    public int GroupSize => KvHeadCount > 0 ? HeadCount / KvHeadCount : 0;

    /// <summary>The only model size llama.cpp's quantizer looks at: Llama-2/3 70B (80 layers with grouped KV heads).</summary>
    public bool Is70B => Architecture == "llama" && LayerCount == 80 && HeadCount != KvHeadCount;

    public bool IsFalcon => Architecture == "falcon";
}

/// <summary>One tensor as the type choice sees it: its name and ggml shape (ne0 first).</summary>
internal readonly record struct TensorShape(string Name, IReadOnlyList<long> Shape);

/// <summary>
/// Which ggml type each tensor gets: a port of llama.cpp's llama_tensor_get_type (src/llama-quant.cpp, as
/// llama-quantize runs it without tensor-type overrides) for the mixes of <see cref="QuantizationMixes"/>. The choice
/// depends on names, shapes, the metadata above and the presence of an importance matrix, never on values.
/// </summary>
internal static class TensorTypePlanner
{
    enum Category { TokenEmbd, Output, AttentionQkv, AttentionKvB, AttentionV, AttentionK, AttentionQ, AttentionOutput, FfnUp, FfnGate, FfnDown, Other }

    /// <summary>The type of every tensor, in the order given. llama.cpp walks the tensors sorted by name and counts
    /// attn_v and ffn_down tensors as it goes, so the caller must pass them in that order (ordinal name order,
    /// as std::map keeps them) for the counters to agree. <paramref name="currentTypes"/> is what each tensor is
    /// stored as now: tensors that are not quantized keep it.</summary>
    public static GgmlType[] Plan(IReadOnlyList<TensorShape> tensors, IReadOnlyList<GgmlType> currentTypes, QuantizationMix mix,
        ModelShape model, bool pure, bool hasImatrix)
    {
        var state = new State(model, hasImatrix) { TiedEmbeddings = true };
        foreach (var t in tensors)
        {
            var c = CategoryOf(t.Name);
            if (c is Category.AttentionV or Category.AttentionQkv or Category.AttentionKvB) state.AttentionVCount++;
            if (c == Category.Output) state.TiedEmbeddings = false;
        }
        var types = new GgmlType[tensors.Count];
        for (int i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            if (!AllowsQuantization(t)) { types[i] = currentTypes[i]; continue; }
            var type = mix.BaseType;
            if (type.Info().IsQuantized)
            {
                if (!pure) type = MixRule(state, type, t, mix, CategoryOf(t.Name));
                type = Fallback(type, t.Shape[0]);
            }
            types[i] = type;
        }
        return types;
    }

    /// <summary>tensor_allows_quantization, for the architectures this engine runs (the rest of llama.cpp's list names
    /// tensors of other families: altup, ssm_conv1d, time_mix_*, position embeddings...).</summary>
    public static bool AllowsQuantization(TensorShape t)
    {
        if (NDims(t.Shape) < 2) return false;
        var n = t.Name;
        if (!n.EndsWith("weight", StringComparison.Ordinal)) return false;
        foreach (var excluded in NeverQuantized)
            if (n.Contains(excluded, StringComparison.Ordinal)) return false;
        return n != "position_embd.weight" && n != "token_types.weight";
    }

    static readonly string[] NeverQuantized =
    [
        "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
        "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
        "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight",
        "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight",
        "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_",
        ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
    ];

    /// <summary>ggml_n_dims: trailing dimensions of 1 do not count.</summary>
    static int NDims(IReadOnlyList<long> shape)
    {
        for (int i = shape.Count - 1; i >= 1; i--)
            if (shape[i] != 1) return i + 1;
        return 1;
    }

    static Category CategoryOf(string name)
    {
        if (name == "output.weight") return Category.Output;
        if (name is "token_embd.weight" or "per_layer_token_embd.weight") return Category.TokenEmbd;
        if (name.Contains("attn_qkv.weight", StringComparison.Ordinal)) return Category.AttentionQkv;
        if (name.Contains("attn_kv_b.weight", StringComparison.Ordinal)) return Category.AttentionKvB;
        if (name.Contains("attn_v.weight", StringComparison.Ordinal)) return Category.AttentionV;
        if (name.Contains("attn_k.weight", StringComparison.Ordinal)) return Category.AttentionK;
        if (name.Contains("attn_q.weight", StringComparison.Ordinal)) return Category.AttentionQ;
        if (name.Contains("attn_output.weight", StringComparison.Ordinal)) return Category.AttentionOutput;
        if (name.Contains("ffn_up", StringComparison.Ordinal)) return Category.FfnUp;
        if (name.Contains("ffn_gate", StringComparison.Ordinal)) return Category.FfnGate;
        if (name.Contains("ffn_down", StringComparison.Ordinal)) return Category.FfnDown;
        return Category.Other;
    }

    /// <summary>llama.cpp's "more bits" layers: the first and last eighth, and every third layer between.</summary>
    public static bool UseMoreBits(int layer, int layerCount) =>
        layer < layerCount / 8 || layer >= 7 * layerCount / 8 || (layer - layerCount / 8) % 3 == 2;

    sealed class State(ModelShape model, bool hasImatrix)
    {
        public ModelShape Model { get; } = model;
        public bool HasImatrix { get; } = hasImatrix;
        public bool TiedEmbeddings;
        public int AttentionVCount;
        public int AttentionVIndex;
        public int FfnDownIndex;

        /// <summary>layer_info: the running count for dense models; MoE models read the block number from the name,
        /// because their expert tensors are not one per block in name order.</summary>
        public int Layer(int running, string name)
        {
            if (Math.Max(1, Model.ExpertCount) <= 1) return running;
            if (!name.StartsWith("blk.", StringComparison.Ordinal)
                || !int.TryParse(name.AsSpan(4, Math.Max(0, name.IndexOf('.', 4) - 4)), out int layer))
                throw new QuantizationException(QuantizationErrorKind.BadTensorName, $"cannot determine the layer of tensor {name}");
            if (layer < 0 || layer >= Model.LayerCount)
                throw new QuantizationException(QuantizationErrorKind.BadTensorName, $"tensor {name} names layer {layer}, outside [0, {Model.LayerCount})");
            return layer;
        }
    }

    /// <summary>llama_tensor_get_type_impl for the mixes we write (the IQ1/IQ2/IQ3, TQ and MXFP4 branches are left out).</summary>
    static GgmlType MixRule(State s, GgmlType type, TensorShape t, QuantizationMix mix, Category category)
    {
        var m = s.Model;
        uint f = mix.FileType;
        int nLayer = m.LayerCount;
        if (category == Category.Output || (s.TiedEmbeddings && category == Category.TokenEmbd))
        {
            // The output matrix (or the embedding that doubles as it) gets Q6_K, or Q8_0 when its rows do not split
            // into blocks of the base type or the file is Q8_0 already.
            if (m.IsFalcon || t.Shape[0] % type.Info().BlockSize != 0) return GgmlType.Q8_0;
            return type != GgmlType.Q8_0 ? GgmlType.Q6_K : type;
        }
        switch (category)
        {
            case Category.TokenEmbd:
                return type;
            case Category.AttentionV or Category.AttentionQkv or Category.AttentionKvB:
            {
                int gqa = m.GroupSize;
                if (f == QuantizationMixes.Q2_K.FileType) type = gqa >= 4 ? GgmlType.Q4_K : GgmlType.Q3_K;
                else if (f == QuantizationMixes.Q3_K_M.FileType) type = s.AttentionVIndex < 2 ? GgmlType.Q5_K : GgmlType.Q4_K;
                else if (f == QuantizationMixes.Q3_K_L.FileType) type = GgmlType.Q5_K;
                else if ((f == QuantizationMixes.IQ4_NL.FileType || f == QuantizationMixes.IQ4_XS.FileType) && gqa >= 4) type = GgmlType.Q5_K;
                else if ((f == QuantizationMixes.Q4_K_M.FileType || f == QuantizationMixes.Q5_K_M.FileType)
                         && UseMoreBits(s.AttentionVIndex, s.AttentionVCount)) type = GgmlType.Q6_K;
                else if (f == QuantizationMixes.Q4_K_S.FileType && s.AttentionVIndex < 4) type = GgmlType.Q5_K;
                // 70B shares each attn_v among 8 heads, so it is 8x smaller than attn_q and more bits cost little.
                if (m.Is70B && type is GgmlType.Q3_K or GgmlType.Q4_K) type = GgmlType.Q5_K;
                if (m.ExpertCount == 8) type = GgmlType.Q8_0;
                s.AttentionVIndex++;
                return type;
            }
            case Category.AttentionK:
                return m.ExpertCount == 8 ? GgmlType.Q8_0 : type;
            case Category.FfnDown:
            {
                int layer = s.Layer(s.FfnDownIndex, t.Name);
                if (f == QuantizationMixes.Q2_K.FileType) type = GgmlType.Q3_K;
                else if (f == QuantizationMixes.Q3_K_M.FileType)
                    type = layer < nLayer / 16 ? GgmlType.Q5_K
                         : !m.IsFalcon || UseMoreBits(layer, nLayer) ? GgmlType.Q4_K
                         : GgmlType.Q3_K;
                else if (f == QuantizationMixes.Q3_K_L.FileType) type = m.IsFalcon ? GgmlType.Q4_K : GgmlType.Q5_K;
                else if (f == QuantizationMixes.Q4_K_M.FileType)
                {
                    if (m.IsFalcon)
                        type = layer < nLayer / 16 ? GgmlType.Q6_K : UseMoreBits(layer, nLayer) ? GgmlType.Q5_K : GgmlType.Q4_K;
                    else if (UseMoreBits(layer, nLayer)) type = GgmlType.Q6_K;
                }
                else if (layer < nLayer / 8 && (f == QuantizationMixes.IQ4_NL.FileType || f == QuantizationMixes.IQ4_XS.FileType) && !s.HasImatrix)
                    type = GgmlType.Q5_K;
                else if (f == QuantizationMixes.Q5_K_M.FileType && UseMoreBits(layer, nLayer)) type = GgmlType.Q6_K;
                else if (f == QuantizationMixes.Q4_K_S.FileType && !m.IsFalcon && layer < nLayer / 8) type = GgmlType.Q5_K;
                else if ((f == QuantizationMixes.Q4_0.FileType || f == QuantizationMixes.Q5_0.FileType) && s.HasImatrix && layer < nLayer / 8)
                    // llama.cpp guards the first ffn_down layers of Q4_0/Q5_0 only with an imatrix, so that the
                    // imatrix-free result stays what it always was.
                    type = f == QuantizationMixes.Q4_0.FileType ? GgmlType.Q4_1 : GgmlType.Q5_1;
                s.FfnDownIndex++;
                return type;
            }
            case Category.AttentionOutput:
                if (!m.IsFalcon)
                {
                    if (m.ExpertCount == 8)
                    {
                        if (f == QuantizationMixes.Q2_K.FileType || f == QuantizationMixes.Q3_K_S.FileType || f == QuantizationMixes.Q3_K_M.FileType
                            || f == QuantizationMixes.IQ4_NL.FileType || f == QuantizationMixes.Q4_K_S.FileType
                            || f == QuantizationMixes.Q4_K_M.FileType || f == QuantizationMixes.IQ4_XS.FileType)
                            type = GgmlType.Q5_K;
                    }
                    else if (f == QuantizationMixes.Q2_K.FileType) type = GgmlType.Q3_K;
                    else if (f == QuantizationMixes.Q3_K_M.FileType) type = GgmlType.Q4_K;
                    else if (f == QuantizationMixes.Q3_K_L.FileType) type = GgmlType.Q5_K;
                }
                else if (f == QuantizationMixes.Q3_K_L.FileType) type = GgmlType.Q4_K;
                return type;
            default:
                return type;
        }
    }

    /// <summary>tensor_type_fallback: a row length that is no multiple of the type's block size demotes a 256-block
    /// type to a 32-block type of about the same size, and to F16 when even 32 does not divide it.</summary>
    public static GgmlType Fallback(GgmlType type, long rowLength)
    {
        int block = type.Info().BlockSize;
        if (rowLength % block == 0) return type;
        var fallback = type switch
        {
            GgmlType.IQ4_XS => GgmlType.IQ4_NL,
            GgmlType.Q2_K or GgmlType.Q3_K => GgmlType.Q4_0,
            GgmlType.Q4_K => GgmlType.Q5_0,
            GgmlType.Q5_K => GgmlType.Q5_1,
            GgmlType.Q6_K => GgmlType.Q8_0,
            _ when block <= 32 => type,
            _ => throw new QuantizationException(QuantizationErrorKind.UnsupportedType, $"no tensor type fallback is defined for type {type}"),
        };
        return rowLength % fallback.Info().BlockSize == 0 ? fallback : GgmlType.F16;
    }
}
