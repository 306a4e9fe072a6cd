namespace Engine.Formats.Gguf;

/// <summary>Caps on what a GGUF header may declare. They sit well above every real model (a 150k-token
/// vocabulary is an array of 150k strings; a chat template is a few KiB) and far below what could exhaust
/// memory. Counts are additionally checked against the bytes that remain in the file.</summary>
internal static class GgufLimits
{
    /// <summary>Metadata keys (checklist G2 suggests 64 KiB).</summary>
    public const long MaxKeyBytes = 64 * 1024;
    /// <summary>String values (G2: 16 MiB, as Ollama).</summary>
    public const long MaxStringBytes = 16 * 1024 * 1024;
    /// <summary>Array elements (G3: 64 Mi, as Ollama).</summary>
    public const long MaxArrayElements = 64L * 1024 * 1024;
    /// <summary>Tensor names: ggml's GGML_MAX_NAME is 64 including the terminating NUL.</summary>
    public const int MaxTensorNameBytes = 63;
    /// <summary>ggml's GGML_MAX_DIMS.</summary>
    public const int MaxDimensions = 4;
    /// <summary>general.alignment above this is rejected as absurd (G5).</summary>
    public const uint MaxAlignment = 1024 * 1024;
    public const uint DefaultAlignment = 32;
    /// <summary>Smallest possible metadata entry: key length (8) + 1-byte key + type (4) + 1-byte value.</summary>
    public const long MinBytesPerKeyValue = 8 + 1 + 4 + 1;
    /// <summary>Smallest possible tensor info: name length (8) + 1-byte name + n_dims (4) + one dim (8) + type (4) + offset (8).</summary>
    public const long MinBytesPerTensorInfo = 8 + 1 + 4 + 8 + 4 + 8;
}
