namespace Engine.Convert.Model;

/// <summary>What a tensor holds, which decides how its values are made.</summary>
public enum TensorContent
{
    /// <summary>A projection or embedding matrix: random values, stored in the output type's choice for it.</summary>
    Weight,
    /// <summary>The MoE router (ffn_gate_inp): random values, always F32 (llama.cpp never quantizes it).</summary>
    Router,
    /// <summary>An RMSNorm weight: ones, F32.</summary>
    Norm,
    /// <summary>A projection bias: random values, F32.</summary>
    Bias,
    /// <summary>Llama 3 RoPE frequency factors (rope_freqs), F32, computed from the preset.</summary>
    RopeFrequencies,
}

/// <summary>One tensor of a model: its GGUF name, its shape in ggml order (ne0, the row length, first) and what it
/// holds. <see cref="Layer"/> is -1 for tensors outside the blocks.</summary>
public sealed record TensorSpec(string Name, long[] Shape, TensorContent Content, int Layer)
{
    /// <summary>Elements along a row (ggml ne0).</summary>
    public long RowLength => Shape[0];
    /// <summary>Rows across all other dimensions (experts included).</summary>
    public long RowCount => Shape.Skip(1).Aggregate(1L, (a, d) => a * d);
    public long ElementCount => RowLength * RowCount;
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
