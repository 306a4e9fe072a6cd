using Engine.Formats;

namespace Engine.Models;

/// <summary>A 2-D weight used as y = W x: ggml shape [Cols (input, contiguous), Rows (output)], stored in
/// the file's own type and read in place from the memory map (never copied).</summary>
internal sealed class WeightMatrix(string name, TensorView view)
{
    public string Name { get; } = name;
    public TensorView View { get; } = view;
    public GgmlType Type => View.Type;
    /// <summary>Input width K (ggml ne0).</summary>
    public int Cols { get; } = checked((int)view.Shape[0]);
    /// <summary>Output rows N (the product of the other dims).</summary>
    public int Rows { get; } = checked((int)view.RowCount);
    public long RowBytes => View.ByteSize / Math.Max(1, Rows);
    /// <summary>What a GPTQ / AWQ linear needs beyond its Q4_0 rows (input order, zero points, activation mode);
    /// null for every matrix read from a GGUF or a plain Hugging Face folder.</summary>
    public QuantizedLinear? Quantized { get; init; }
    public override string ToString() => $"{Name} {Type} [{Cols} x {Rows}]";
}

/// <summary>A 1-D weight (norm scale, bias): small, so it is converted to float32 once at load.</summary>
internal sealed class WeightVector(string name, float[] values)
{
    public string Name { get; } = name;
    public float[] Values { get; } = values;
    public int Length => Values.Length;
}
