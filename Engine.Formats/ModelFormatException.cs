namespace Engine.Formats;

/// <summary>What is wrong with a model file. Each value corresponds to a row (or a group of rows) of the
/// reliability checklist, so tests can assert the exact kind of rejection.</summary>
public enum FormatErrorKind
{
    /// <summary>F1: empty file, or shorter than a fixed header or than a field it declares.</summary>
    FileTooShort,
    /// <summary>F2: the magic bytes are not those of the format.</summary>
    BadMagic,
    /// <summary>F2: right magic, but the version field reads as byte-swapped (a big-endian file).</summary>
    WrongEndianness,
    /// <summary>G1: a format version this reader does not support.</summary>
    UnsupportedVersion,
    /// <summary>F4/G2/G3: a declared count or length cannot fit in the bytes that remain, or exceeds a cap.</summary>
    LengthTooLarge,
    /// <summary>F5: integer overflow in element counts, byte sizes, offsets or padding.</summary>
    Overflow,
    /// <summary>G3: a metadata value type id out of range, or an array of arrays.</summary>
    InvalidValueType,
    /// <summary>G4/G6: an empty key or tensor name, or one over the length limit.</summary>
    InvalidName,
    /// <summary>F7: a duplicate metadata key, tensor name or JSON property.</summary>
    Duplicate,
    /// <summary>G5: general.alignment of the wrong type, zero, not a power of two, or absurdly large.</summary>
    BadAlignment,
    /// <summary>G8: a known metadata key holding a value of the wrong type.</summary>
    WrongMetadataType,
    /// <summary>G9: a required metadata key or config field is missing.</summary>
    MissingKey,
    /// <summary>F8: unknown tensor type / dtype id.</summary>
    UnknownTensorType,
    /// <summary>F9: a negative dimension, too many dimensions, or an empty shape where one is needed.</summary>
    InvalidShape,
    /// <summary>F10: a row length that is not a multiple of the quant block size.</summary>
    NotBlockAligned,
    /// <summary>G7: a tensor offset that is not aligned, or not the running aligned sum of the tensors before it.</summary>
    BadTensorOffset,
    /// <summary>F3: a tensor's bytes extend past the end of the file (a truncated download).</summary>
    TensorOutOfBounds,
    /// <summary>F11: a name, key or string that is not valid UTF-8.</summary>
    InvalidUtf8,
    /// <summary>S1: the Safetensors header length is over the cap or past the end of the file.</summary>
    HeaderTooLarge,
    /// <summary>S2/S3: the header is not a JSON object of the expected form.</summary>
    InvalidHeader,
    /// <summary>S4/F6: data offsets that overlap, leave holes, or run backwards.</summary>
    InvalidOffsets,
    /// <summary>S5: a tensor's byte extent does not match its shape and dtype.</summary>
    SizeMismatch,
    /// <summary>S6: bytes in the data buffer that no tensor covers.</summary>
    IncompleteBuffer,
    /// <summary>S7: a shard file name that could escape the model directory or is not a .safetensors file.</summary>
    UnsafePath,
    /// <summary>S8: the shard index disagrees with the shards.</summary>
    ShardMismatch,
    /// <summary>S9/M*: configuration values missing, of the wrong type or out of range.</summary>
    InvalidConfig,
    /// <summary>The file or folder cannot be opened at all.</summary>
    Io,
}

/// <summary>A model file (GGUF, Safetensors, config.json) that cannot be trusted: says what is wrong and where.
/// <see cref="Exception.Message"/> holds the whole story for a person ("path: what [field 'x'] at byte N (expected E,
/// got A) [Kind]"); the properties hold the same facts for code.</summary>
public sealed class ModelFormatException : Exception
{
    /// <summary>Which rule the file breaks; stable, so callers and tests can branch on it.</summary>
    public FormatErrorKind Kind { get; }
    /// <summary>The file the problem was found in, when known.</summary>
    public string? FilePath { get; }
    /// <summary>The metadata key, tensor name or JSON field concerned, when there is one.</summary>
    public string? Field { get; }
    /// <summary>The byte offset in the file where the bad field starts, when known.</summary>
    public long? Offset { get; }
    /// <summary>What the reader expected to find, in words ("2 or 3", "&lt;= 1024 bytes"), when there is a single answer.</summary>
    public string? Expected { get; }
    /// <summary>What the file holds instead, in words, when it can be shown.</summary>
    public string? Actual { get; }

    /// <summary>Creates an error; <see cref="Exception.Message"/> is composed from every part given.</summary>
    /// <param name="kind">Which rule the file breaks.</param>
    /// <param name="message">What is wrong, without the location (that comes from the other parameters).</param>
    /// <param name="field">The metadata key, tensor name or JSON field concerned, if any.</param>
    /// <param name="offset">The byte offset in the file where the bad field starts, if known.</param>
    /// <param name="expected">What a valid file holds there, in words.</param>
    /// <param name="actual">What this file holds there, in words.</param>
    /// <param name="filePath">The file concerned, if known (see <see cref="WithFile"/> for adding it later).</param>
    /// <param name="inner">The exception that revealed the problem (an I/O or JSON error), if any.</param>
    public ModelFormatException(FormatErrorKind kind, string message, string? field = null, long? offset = null,
        string? expected = null, string? actual = null, string? filePath = null, Exception? inner = null)
        : base(Compose(kind, message, field, offset, expected, actual, filePath), inner)
    {
        Kind = kind;
        Field = field;
        Offset = offset;
        Expected = expected;
        Actual = actual;
        FilePath = filePath;
        Detail = message;
    }

    /// <summary>The message without the location decorations.</summary>
    public string Detail { get; }

    /// <summary>The same error, attributed to a file (readers parse before they know the path's role). An error that
    /// already names a file is returned as it is.</summary>
    /// <param name="path">The file the error was found in.</param>
    public ModelFormatException WithFile(string path) =>
        FilePath is not null ? this : new ModelFormatException(Kind, Detail, Field, Offset, Expected, Actual, path, InnerException);

    static string Compose(FormatErrorKind kind, string message, string? field, long? offset, string? expected,
        string? actual, string? filePath)
    {
        var text = new System.Text.StringBuilder();
        if (filePath is not null) text.Append(filePath).Append(": ");
        text.Append(message);
        if (field is not null) text.Append(" [field '").Append(field).Append("']");
        if (offset is not null) text.Append(" at byte ").Append(offset.Value);
        if (expected is not null || actual is not null)
            text.Append(" (expected ").Append(expected ?? "?").Append(", got ").Append(actual ?? "?").Append(')');
        text.Append(" [").Append(kind).Append(']');
        return text.ToString();
    }
}
