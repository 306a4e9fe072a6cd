using Engine.Convert.Model;

namespace Engine.Convert.Safetensors;

/// <summary>One checkpoint tensor: its Hugging Face name and shape (PyTorch order), made from rows
/// [<see cref="FirstRow"/>, + <see cref="RowCount"/>) of the GGUF tensor <see cref="Source"/>, so both formats hold the
/// same values for the same seed.</summary>
public sealed record HfTensor(string Name, long[] Shape, TensorSpec Source, long FirstRow, long RowCount)
{
    public long ElementCount => Shape.Aggregate(1L, (a, d) => a * d);
}

/// <summary>The Hugging Face checkpoint tensors of a preset, in transformers' order. MoE layers split llama.cpp's
/// stacked expert tensors back into one matrix per expert.</summary>
public static class HfTensorNames
{
    static readonly Dictionary<string, string> LayerNames = new()
    {
        ["attn_norm.weight"] = "input_layernorm.weight",
        ["attn_q.weight"] = "self_attn.q_proj.weight",
        ["attn_k.weight"] = "self_attn.k_proj.weight",
        ["attn_v.weight"] = "self_attn.v_proj.weight",
        ["attn_q.bias"] = "self_attn.q_proj.bias",
        ["attn_k.bias"] = "self_attn.k_proj.bias",
        ["attn_v.bias"] = "self_attn.v_proj.bias",
        ["attn_q_norm.weight"] = "self_attn.q_norm.weight",
        ["attn_k_norm.weight"] = "self_attn.k_norm.weight",
        ["attn_output.weight"] = "self_attn.o_proj.weight",
        ["ffn_norm.weight"] = "post_attention_layernorm.weight",
        ["ffn_gate.weight"] = "mlp.gate_proj.weight",
        ["ffn_up.weight"] = "mlp.up_proj.weight",
        ["ffn_down.weight"] = "mlp.down_proj.weight",
        ["ffn_gate_inp.weight"] = "mlp.gate.weight",
    };

    static readonly Dictionary<string, string> ExpertNames = new()
    {
        ["ffn_gate_exps.weight"] = "gate_proj.weight",
        ["ffn_up_exps.weight"] = "up_proj.weight",
        ["ffn_down_exps.weight"] = "down_proj.weight",
    };

    /// <summary>rope_freqs has no checkpoint tensor (config.json's rope_scaling stands for it).</summary>
    public static IReadOnlyList<HfTensor> For(IReadOnlyList<TensorSpec> ggufTensors)
    {
        static HfTensor Whole(string name, TensorSpec t) => new(name, t.Shape.Reverse().ToArray(), t, 0, t.RowCount);
        var result = new List<HfTensor>();
        HfTensor? embedding = null, norm = null, output = null;
        foreach (var t in ggufTensors)
        {
            switch (t.Name)
            {
                case "rope_freqs.weight": continue;
                case "token_embd.weight": embedding = Whole("model.embed_tokens.weight", t); continue;
                case "output_norm.weight": norm = Whole("model.norm.weight", t); continue;
                case "output.weight": output = Whole("lm_head.weight", t); continue;
            }
            string prefix = $"model.layers.{t.Layer}.", local = t.Name[$"blk.{t.Layer}.".Length..];
            if (LayerNames.TryGetValue(local, out var hf)) result.Add(Whole(prefix + hf, t));
            else if (ExpertNames.TryGetValue(local, out var expert))
            {
                long rowsPerExpert = t.Shape[1];
                for (int e = 0; e < t.Shape[2]; e++)
                    result.Add(new HfTensor($"{prefix}mlp.experts.{e}.{expert}", [rowsPerExpert, t.Shape[0]], t, e * rowsPerExpert, rowsPerExpert));
            }
            else throw new InvalidOperationException($"no Hugging Face name for {t.Name}");
        }
        return [embedding!, .. result, norm!, .. output is null ? Array.Empty<HfTensor>() : [output]];
    }
}
