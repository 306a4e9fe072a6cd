namespace Engine;

/// <summary>What is wrong with a control vector, or why it does not fit a model.</summary>
public enum ControlVectorErrorKind
{
    /// <summary>The file holds no tensor at all, so there is nothing to steer with.</summary>
    NoDirections,
    /// <summary>A tensor is not named "direction.N" with N a whole number of 1 or more.</summary>
    InvalidName,
    /// <summary>A direction is stored in a type other than F32.</summary>
    NotF32,
    /// <summary>A direction is not one-dimensional.</summary>
    NotOneDimensional,
    /// <summary>A direction holds NaN or an infinity.</summary>
    NonFiniteValue,
    /// <summary>Directions of different widths (within a file, between vectors, or against the model's embedding length).</summary>
    WidthMismatch,
    /// <summary>A direction for a layer the model does not have (a control vector steers layers 1 to LayerCount - 1).</summary>
    LayerOutOfRange,
}

/// <summary>A control vector that cannot be used: a file that is valid GGUF but not a valid control vector, or a vector
/// that does not fit the model it is applied to. The message says what and where ("path: tensor 'x': problem");
/// the properties hold the same facts for code. A file that is not readable GGUF at all is reported by the GGUF reader
/// as <see cref="Formats.ModelFormatException"/>.</summary>
public sealed class ControlVectorException : Exception
{
    /// <summary>Which rule the vector breaks.</summary>
    public ControlVectorErrorKind Kind { get; }
    /// <summary>The control-vector file concerned, when the vector came from a file.</summary>
    public string? FilePath { get; }
    /// <summary>The tensor concerned ("direction.3"), when there is one.</summary>
    public string? TensorName { get; }

    /// <summary>Creates an error; the message is composed from the file, the tensor and the problem.</summary>
    /// <param name="kind">Which rule the vector breaks.</param>
    /// <param name="message">What is wrong, without the location.</param>
    /// <param name="filePath">The control-vector file concerned, if known.</param>
    /// <param name="tensorName">The tensor concerned, if any.</param>
    public ControlVectorException(ControlVectorErrorKind kind, string message, string? filePath = null, string? tensorName = null)
        : base((filePath is null ? "" : filePath + ": ") + (tensorName is null ? "" : $"tensor '{tensorName}': ") + message)
    {
        Kind = kind;
        FilePath = filePath;
        TensorName = tensorName;
    }
}
