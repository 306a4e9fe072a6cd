using Engine.Formats;

namespace Engine.Quantization;

/// <summary>
/// One weight storage type: how a row of it dequantizes, which format the activation vector must be
/// quantized to, and the dot product of one row with those quantized activations.
/// Rows are ggml rows: K elements (ne0) stored as K / BlockSize blocks of BytesPerBlock bytes.
/// Implementations are stateless and thread-safe.
/// </summary>
internal interface IRowFormat
{
    GgmlType Type { get; }
    /// <summary>Elements per block.</summary>
    int BlockSize { get; }
    int BytesPerBlock { get; }
    /// <summary>What x must be quantized to for <see cref="DotRow"/>: llama.cpp's vec_dot_type for this type
    /// (Q8_0, Q8_1, Q8_K, F16, BF16 or F32).</summary>
    GgmlType ActivationType { get; }

    /// <summary>Plain scalar reference: row bytes to floats; dst.Length is the element count.</summary>
    void DequantizeRowReference(ReadOnlySpan<byte> row, Span<float> dst);
    /// <summary>Same result as the reference, bit for bit, using SIMD where it pays.</summary>
    void DequantizeRow(ReadOnlySpan<byte> row, Span<float> dst);

    /// <summary>Bytes needed by <see cref="QuantizeActivations"/> for a vector of k elements.</summary>
    int ActivationBytes(int k);
    /// <summary>Quantizes x (length k) into the activation format, once per matmul; bit-exact with the
    /// quantizer llama.cpp's x86 CPU backend runs for <see cref="ActivationType"/> (for Q8_0/Q8_1 that is its
    /// AVX variant, which rounds ties to even, not the roundf of the reference).</summary>
    void QuantizeActivations(ReadOnlySpan<float> x, Span<byte> dst);

    /// <summary>Scalar reference dot of one weight row with quantized activations, written like llama.cpp's
    /// generic ggml_vec_dot_&lt;type&gt;_&lt;vec_dot_type&gt; (same integer sums, same float order).</summary>
    float DotRowReference(ReadOnlySpan<byte> row, ReadOnlySpan<byte> activations, int k);
    /// <summary>Fast dot: integer parts identical to the reference, float summation order may differ.</summary>
    float DotRow(ReadOnlySpan<byte> row, ReadOnlySpan<byte> activations, int k);
}

/// <summary>A weight type we can also write, as llama.cpp's ggml_quantize_chunk does for one row: without importance
/// weights its quantize_row_&lt;type&gt;_ref, with them the weighted quantizer of the type (quantize_row_&lt;type&gt;_impl).</summary>
internal interface IWeightQuantizer
{
    GgmlType Type { get; }
    /// <summary>Quantizes x (length a multiple of the block size) into dst (the row's bytes).</summary>
    void QuantizeRowReference(ReadOnlySpan<float> x, Span<byte> dst);
    /// <summary>Quantizes x into dst spending the precision where importance (one value per element of the row, from
    /// an importance matrix: the mean squared activation of the input column) is high. Q8_0 ignores it, as ggml does.</summary>
    void QuantizeRowWeighted(ReadOnlySpan<float> x, Span<byte> dst, ReadOnlySpan<float> importance);
}
