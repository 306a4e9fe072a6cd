using Engine.Formats;

namespace Engine.Quantization;

/// <summary>A quantizer that also takes per-column importance weights (ggml's quantize_row_&lt;type&gt;_impl with
/// quant_weights), as llama-quantize runs it with --imatrix.</summary>
internal interface IImportanceWeightedQuantizer
{
    void QuantizeRow(ReadOnlySpan<float> x, Span<byte> dst, ReadOnlySpan<float> importance);
}

/// <summary>An importance matrix read for quantization: per tensor, the mean squared activation of each column.</summary>
internal sealed class ImatrixWeights
{
    public static ImatrixWeights Load(string path) =>
        throw new QuantizationException(QuantizationErrorKind.NotSupported,
            "--imatrix is not supported yet: the importance-weighted quantizers are not ported (see docs/quantization.md)");

    public float[]? For(Engine.Formats.TensorView tensor, GgmlType to) => null;
}
