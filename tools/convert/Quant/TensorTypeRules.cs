using Engine.Convert.Model;
using Engine.Formats;

namespace Engine.Convert.Quant;

/// <summary>The shape facts llama.cpp's tensor-type choice looks at.</summary>
public sealed record ModelFacts(int LayerCount, int ExpertCount, bool TiedEmbeddings);

/// <summary>
/// Which ggml type each tensor gets for an output type: a port of llama.cpp's llama_tensor_get_type
/// (src/llama-quant.cpp, as llama-quantize runs it with default parameters: no --pure, no imatrix, no overrides),
/// restricted to the branches the supported output types can reach. Float output types keep every matrix in
/// that float type. The choice depends on names and shapes only, never on values.
/// </summary>
public static class TensorTypeRules
{
    enum Category { TokenEmbd, Output, AttentionV, AttentionK, AttentionQ, AttentionOutput, FfnUp, FfnGate, FfnDown, Other }

    public static GgmlType Choose(OutputType output, TensorSpec t, ModelFacts model)
    {
        if (!AllowsQuantization(t)) return GgmlType.F32; // norms, biases, router, rope_freqs: F32 as the converter stores them
        if (output.IsFloat) return output.DefaultType;
        var type = MixRules(output, t, CategoryOf(t.Name), model);
        return Fallback(type, t.RowLength);
    }

    /// <summary>tensor_allows_quantization: 2-D and 3-D "*weight" tensors except norms and the MoE router.</summary>
    public static bool AllowsQuantization(TensorSpec t) =>
        t.Shape.Length >= 2
        && t.Name.EndsWith("weight", StringComparison.Ordinal)
        && !t.Name.Contains("_norm.weight", StringComparison.Ordinal)
        && !t.Name.Contains("ffn_gate_inp.weight", StringComparison.Ordinal);

    static Category CategoryOf(string name)
    {
        if (name == "output.weight") return Category.Output;
        if (name == "token_embd.weight") return Category.TokenEmbd;
        // attn_qkv and attn_kv_b count as attn_v in llama.cpp; none of the presets has them.
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

    /// <summary>llama_tensor_get_type_impl for Q4_0, Q8_0 and Q4_K_M. llama.cpp counts attn_v and ffn_down tensors
    /// as it meets them in its name-sorted order, which is the block number for one such tensor per block; MoE models
    /// read it from the name. Both come to <see cref="TensorSpec.Layer"/>.</summary>
    static GgmlType MixRules(OutputType output, TensorSpec t, Category category, ModelFacts model)
    {
        var type = output.DefaultType;
        bool q4km = output == OutputType.Q4_K_M;
        bool eightExperts = model.ExpertCount == 8; // llama.cpp's Mixtral-8x7B special cases
        switch (category)
        {
            case Category.Output:
            case Category.TokenEmbd when model.TiedEmbeddings:
                // The output matrix (or the embedding that doubles as it) gets Q6_K, or Q8_0 when the rows do not
                // split into 256-blocks or the file is Q8_0 already.
                if (t.RowLength % type.Info().BlockSize != 0) type = GgmlType.Q8_0;
                else if (type != GgmlType.Q8_0) type = GgmlType.Q6_K;
                break;
            case Category.TokenEmbd:
                break; // an untied embedding keeps the default type
            case Category.AttentionV:
                if (q4km && UseMoreBits(t.Layer, model.LayerCount)) type = GgmlType.Q6_K;
                if (eightExperts) type = GgmlType.Q8_0;
                break;
            case Category.AttentionK:
                if (eightExperts) type = GgmlType.Q8_0;
                break;
            case Category.FfnDown:
                if (q4km && UseMoreBits(t.Layer, model.LayerCount)) type = GgmlType.Q6_K;
                break;
            case Category.AttentionOutput:
                if (q4km && eightExperts) type = GgmlType.Q5_K;
                break;
        }
        return type;
    }

    /// <summary>tensor_type_fallback: a row length that is no multiple of the type's block size demotes a 256-block
    /// k-quant to a 32-block type of about the same size, and to F16 when even 32 does not divide it.</summary>
    public static GgmlType Fallback(GgmlType type, long rowLength)
    {
        if (rowLength % type.Info().BlockSize == 0) return type;
        var fallback = type switch
        {
            GgmlType.Q4_K => GgmlType.Q5_0,
            GgmlType.Q5_K => GgmlType.Q5_1,
            GgmlType.Q6_K => GgmlType.Q8_0,
            GgmlType.Q2_K or GgmlType.Q3_K => GgmlType.Q4_0,
            _ when type.Info().BlockSize <= 32 => type,
            _ => throw new NotSupportedException($"no fallback type for {type}"),
        };
        return rowLength % fallback.Info().BlockSize == 0 ? fallback : GgmlType.F16;
    }
}
