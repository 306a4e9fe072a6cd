namespace Engine.Convert.Model;

/// <summary>The order llama-quantize writes tensors in: its loader keeps weights in a map ordered by block number
/// (tensors outside the blocks first) and then by name, byte-wise (llama_model_loader::weight_name_comparer).
/// Quantized files use it so they lay out like the files llama.cpp's own quantizer makes.</summary>
public static class QuantizerTensorOrder
{
    public static IReadOnlyList<TensorSpec> Sort(IEnumerable<TensorSpec> tensors) =>
        tensors.OrderBy(t => BlockNumber(t.Name)).ThenBy(t => t.Name, StringComparer.Ordinal).ToList();

    /// <summary>N for "blk.N.*" (as sscanf "blk.%d." reads it), -1 otherwise.</summary>
    public static int BlockNumber(string name)
    {
        if (!name.StartsWith("blk.", StringComparison.Ordinal)) return -1;
        int end = name.IndexOf('.', 4);
        return end > 4 && int.TryParse(name.AsSpan(4, end - 4), out int n) ? n : -1;
    }
}
