namespace Engine.Quantization;

/// <summary>Why a model cannot be quantized as asked.</summary>
internal enum QuantizationErrorKind
{
    /// <summary>The type or mix name is not one we write.</summary>
    UnknownType,
    /// <summary>A tensor would have to be converted from or to a type we cannot read or write.</summary>
    UnsupportedType,
    /// <summary>A tensor is quantized already and --allow-requantize was not given.</summary>
    AlreadyQuantized,
    /// <summary>A tensor name does not say its layer where the type choice needs it.</summary>
    BadTensorName,
    /// <summary>The importance matrix has the wrong size for a tensor, matches none of the model's tensors, lacks its
    /// metadata, or holds a non-finite value.</summary>
    BadImatrix,
    /// <summary>Input and output are the same file.</summary>
    SameFile,
}

/// <summary>A model cannot be quantized as asked; the message says which tensor or option and why.</summary>
internal sealed class QuantizationException(QuantizationErrorKind kind, string message) : Exception(message)
{
    public QuantizationErrorKind Kind { get; } = kind;
}
