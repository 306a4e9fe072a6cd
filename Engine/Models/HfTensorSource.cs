using Engine.Formats;
using Engine.Formats.Safetensors;

namespace Engine.Models;

/// <summary>A Hugging Face checkpoint seen under GGUF tensor names. A Linear weight stored [out, in] is
/// exactly ggml's [in, out] (the reader reverses the shape), so no data moves.</summary>
public sealed class HfTensorSource(SafetensorsModel model, bool tiedOutput) : ITensorSource
{
    static readonly (string Gguf, string Hf)[] LayerNames =
    [
        ("attn_norm.weight", "input_layernorm.weight"),
        ("attn_q.weight", "self_attn.q_proj.weight"),
        ("attn_k.weight", "self_attn.k_proj.weight"),
        ("attn_v.weight", "self_attn.v_proj.weight"),
        ("attn_q.bias", "self_attn.q_proj.bias"),
        ("attn_k.bias", "self_attn.k_proj.bias"),
        ("attn_v.bias", "self_attn.v_proj.bias"),
        ("attn_q_norm.weight", "self_attn.q_norm.weight"),
        ("attn_k_norm.weight", "self_attn.k_norm.weight"),
        ("attn_output.weight", "self_attn.o_proj.weight"),
        ("ffn_norm.weight", "post_attention_layernorm.weight"),
        ("ffn_gate.weight", "mlp.gate_proj.weight"),
        ("ffn_up.weight", "mlp.up_proj.weight"),
        ("ffn_down.weight", "mlp.down_proj.weight"),
    ];

    public static string? HfName(string ggufName, bool tiedOutput)
    {
        switch (ggufName)
        {
            case "token_embd.weight": return "model.embed_tokens.weight";
            case "output_norm.weight": return "model.norm.weight";
            case "output.weight": return tiedOutput ? null : "lm_head.weight";
        }
        if (!ggufName.StartsWith("blk.")) return null;
        int dot = ggufName.IndexOf('.', 4);
        if (dot < 0) return null;
        string layer = ggufName[4..dot], rest = ggufName[(dot + 1)..];
        foreach (var (gguf, hf) in LayerNames)
            if (gguf == rest) return $"model.layers.{layer}.{hf}";
        return null;
    }

    public bool TryGetTensor(string ggufName, out TensorView view)
    {
        view = null!;
        var name = HfName(ggufName, tiedOutput);
        if (name is null || !model.TryGetView(name, out var found) || found is null) return false;
        view = found;
        return true;
    }
}
