using System.Text.RegularExpressions;
using Engine.Formats;
using Engine.Formats.Safetensors;

namespace Engine.Models;

/// <summary>A Hugging Face checkpoint seen under GGUF tensor names. A Linear weight stored [out, in] is
/// exactly ggml's [in, out] (the reader reverses the shape), so no data moves. Experts are separate 2-D
/// tensors in Hugging Face checkpoints; they appear under llama.cpp's per-expert names "blk.N.ffn_gate.E.weight".</summary>
internal sealed partial class HfTensorSource(SafetensorsModel model, bool tiedOutput) : ITensorSource
{
    // GGUF name inside a block -> the Hugging Face names it may have, in the order tried (Qwen, then Mixtral).
    static readonly (string Gguf, string[] Hf)[] LayerNames =
    [
        ("attn_norm.weight", ["input_layernorm.weight"]),
        ("attn_q.weight", ["self_attn.q_proj.weight"]),
        ("attn_k.weight", ["self_attn.k_proj.weight"]),
        ("attn_v.weight", ["self_attn.v_proj.weight"]),
        ("attn_q.bias", ["self_attn.q_proj.bias"]),
        ("attn_k.bias", ["self_attn.k_proj.bias"]),
        ("attn_v.bias", ["self_attn.v_proj.bias"]),
        ("attn_q_norm.weight", ["self_attn.q_norm.weight"]),
        ("attn_k_norm.weight", ["self_attn.k_norm.weight"]),
        ("attn_output.weight", ["self_attn.o_proj.weight"]),
        ("ffn_norm.weight", ["post_attention_layernorm.weight"]),
        ("ffn_gate.weight", ["mlp.gate_proj.weight"]),
        ("ffn_up.weight", ["mlp.up_proj.weight"]),
        ("ffn_down.weight", ["mlp.down_proj.weight"]),
        ("ffn_gate_inp.weight", ["mlp.gate.weight", "block_sparse_moe.gate.weight"]),
        ("ffn_gate_shexp.weight", ["mlp.shared_expert.gate_proj.weight"]),
        ("ffn_up_shexp.weight", ["mlp.shared_expert.up_proj.weight"]),
        ("ffn_down_shexp.weight", ["mlp.shared_expert.down_proj.weight"]),
        ("ffn_gate_inp_shexp.weight", ["mlp.shared_expert_gate.weight"]),
    ];

    // One expert's projection: Qwen names it after the dense MLP, Mixtral w1 (gate), w3 (up), w2 (down).
    static readonly Dictionary<string, string[]> ExpertNames = new()
    {
        ["gate"] = ["mlp.experts.{0}.gate_proj.weight", "block_sparse_moe.experts.{0}.w1.weight"],
        ["up"] = ["mlp.experts.{0}.up_proj.weight", "block_sparse_moe.experts.{0}.w3.weight"],
        ["down"] = ["mlp.experts.{0}.down_proj.weight", "block_sparse_moe.experts.{0}.w2.weight"],
    };

    [GeneratedRegex(@"^ffn_(gate|up|down)\.(\d+)\.weight$")]
    private static partial Regex ExpertTensor();

    /// <summary>The Hugging Face names a GGUF tensor name may have (none when it has no counterpart).</summary>
    public static IEnumerable<string> HfNames(string ggufName, bool tiedOutput)
    {
        switch (ggufName)
        {
            case "token_embd.weight": return ["model.embed_tokens.weight"];
            case "output_norm.weight": return ["model.norm.weight"];
            case "output.weight": return tiedOutput ? [] : ["lm_head.weight"];
        }
        if (!ggufName.StartsWith("blk.")) return [];
        int dot = ggufName.IndexOf('.', 4);
        if (dot < 0) return [];
        string layer = ggufName[4..dot], rest = ggufName[(dot + 1)..];
        string prefix = $"model.layers.{layer}.";
        foreach (var (gguf, hf) in LayerNames)
            if (gguf == rest) return hf.Select(name => prefix + name);
        if (ExpertTensor().Match(rest) is { Success: true } expert)
            return ExpertNames[expert.Groups[1].Value].Select(pattern => prefix + string.Format(pattern, expert.Groups[2].Value));
        return [];
    }

    /// <summary>The GGUF name of a Hugging Face tensor (the inverse of <see cref="HfNames"/>): experts come out under
    /// llama.cpp's per-expert names "blk.N.ffn_gate.E.weight"; null when the tensor has no GGUF counterpart.</summary>
    public static string? GgufName(string hfName)
    {
        switch (hfName)
        {
            case "model.embed_tokens.weight": return "token_embd.weight";
            case "model.norm.weight": return "output_norm.weight";
            case "lm_head.weight": return "output.weight";
        }
        if (LayerOf().Match(hfName) is not { Success: true } layer) return null;
        string block = layer.Groups[1].Value, rest = layer.Groups[2].Value;
        foreach (var (gguf, hf) in LayerNames)
            if (hf.Contains(rest)) return $"blk.{block}.{gguf}";
        if (HfExpertTensor().Match(rest) is { Success: true } expert)
        {
            string projection = expert.Groups[3].Value switch
            {
                "gate_proj" or "w1" => "gate",
                "up_proj" or "w3" => "up",
                _ => "down",
            };
            return $"blk.{block}.ffn_{projection}.{expert.Groups[2].Value}.weight";
        }
        return null;
    }

    [GeneratedRegex(@"^model\.layers\.(\d+)\.(.+)$")]
    private static partial Regex LayerOf();

    [GeneratedRegex(@"^(mlp\.experts|block_sparse_moe\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj|w1|w2|w3)\.weight$")]
    private static partial Regex HfExpertTensor();

    public bool TryGetTensor(string ggufName, out TensorView view)
    {
        foreach (var name in HfNames(ggufName, tiedOutput))
            if (model.TryGetView(name, out var found) && found is not null) { view = found; return true; }
        view = null!;
        return false;
    }
}
