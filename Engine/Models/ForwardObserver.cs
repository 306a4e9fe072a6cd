namespace Engine.Models;

/// <summary>Receives every named intermediate of a forward pass (names as llama.cpp's graph callbacks:
/// "attn_norm", "Qcur", "kqv_out", "ffn_out", "l_out", "result_norm", "result_output"). Layer is -1 outside
/// the blocks. Rows x width values, row-major. Attaching an observer costs copies; none is attached by default.</summary>
public delegate void ForwardObserver(string name, int layer, int rows, int width, ReadOnlySpan<float> values);
