namespace Engine;

/// <summary>Receives every named intermediate of a forward pass (names as llama.cpp's graph callbacks:
/// "attn_norm", "Qcur", "kqv_out", "ffn_out", "l_out", "result_norm", "result_output"; in MoE layers also
/// "ffn_moe_logits", "ffn_moe_probs", "ffn_moe_topk" (chosen expert ids as floats), "ffn_moe_weights",
/// "ffn_moe_weights_norm", "ffn_moe_out", and for qwen2moe "ffn_shexp_gate", "ffn_shexp"). Layer is -1 outside
/// the blocks. Rows x width values, row-major, for the whole batch of a step. Attaching an observer costs copies; none is attached
/// by default. <see cref="Model.AddHook"/> is the richer tool: per sequence and position, editable, with attention
/// patterns and TransformerLens names.</summary>
public delegate void ForwardObserver(string name, int layer, int rows, int width, ReadOnlySpan<float> values);
