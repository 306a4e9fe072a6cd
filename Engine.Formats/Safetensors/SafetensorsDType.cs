namespace Engine.Formats.Safetensors;

/// <summary>Element types of the Safetensors format, named exactly as they are spelled in a file's header.
/// Sub-byte types (F4, F6_*) are packed; a tensor of them must still end on a byte boundary.</summary>
public enum SafetensorsDType
{
    /// <summary>Boolean, one byte each.</summary>
    BOOL,
    /// <summary>Unsigned 8-bit integer.</summary>
    U8,
    /// <summary>Signed 8-bit integer.</summary>
    I8,
    /// <summary>Unsigned 16-bit integer.</summary>
    U16,
    /// <summary>Signed 16-bit integer.</summary>
    I16,
    /// <summary>Unsigned 32-bit integer.</summary>
    U32,
    /// <summary>Signed 32-bit integer.</summary>
    I32,
    /// <summary>Unsigned 64-bit integer.</summary>
    U64,
    /// <summary>Signed 64-bit integer.</summary>
    I64,
    /// <summary>16-bit IEEE 754 half-precision float.</summary>
    F16,
    /// <summary>bfloat16: the upper 16 bits of an f32.</summary>
    BF16,
    /// <summary>32-bit IEEE 754 float.</summary>
    F32,
    /// <summary>64-bit IEEE 754 double.</summary>
    F64,
    /// <summary>8-bit float (OCP FP8) with 4 exponent bits and 3 mantissa bits.</summary>
    F8_E4M3,
    /// <summary>8-bit float (OCP FP8) with 5 exponent bits and 2 mantissa bits.</summary>
    F8_E5M2,
    /// <summary>8-bit exponent-only scale (OCP MX block scales).</summary>
    F8_E8M0,
    /// <summary>6-bit float (OCP MXFP6) with 2 exponent bits and 3 mantissa bits; packed.</summary>
    F6_E2M3,
    /// <summary>6-bit float (OCP MXFP6) with 3 exponent bits and 2 mantissa bits; packed.</summary>
    F6_E3M2,
    /// <summary>4-bit float (MXFP4 E2M1); packed two to a byte.</summary>
    F4,
}

/// <summary>Parsing, sizes and ggml equivalents of <see cref="SafetensorsDType"/>.</summary>
public static class SafetensorsDTypes
{
    /// <summary>Parses a header dtype string. Ordinal and case-sensitive, as the reference implementation is:
    /// "f32" is not a dtype, nor is "3".</summary>
    /// <param name="text">The dtype as the header spells it, e.g. "BF16".</param>
    /// <param name="dtype">The dtype when the text names one; <c>default</c> otherwise.</param>
    public static bool TryParse(string text, out SafetensorsDType dtype)
    {
        dtype = default;
        // Enum.TryParse would also accept numbers ("3") and other casings; the format does not.
        if (text.Length == 0 || !char.IsAsciiLetterUpper(text[0])) return false;
        if (!Enum.TryParse(text, ignoreCase: false, out SafetensorsDType parsed)) return false;
        if (parsed.ToString() != text) return false;
        dtype = parsed;
        return true;
    }

    /// <summary>Bits per element (4, 6, 8, 16, 32 or 64).</summary>
    /// <param name="dtype">The dtype.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="dtype"/> is not a defined value.</exception>
    public static int BitSize(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.BOOL or SafetensorsDType.U8 or SafetensorsDType.I8 => 8,
        SafetensorsDType.F8_E4M3 or SafetensorsDType.F8_E5M2 or SafetensorsDType.F8_E8M0 => 8,
        SafetensorsDType.U16 or SafetensorsDType.I16 or SafetensorsDType.F16 or SafetensorsDType.BF16 => 16,
        SafetensorsDType.U32 or SafetensorsDType.I32 or SafetensorsDType.F32 => 32,
        SafetensorsDType.U64 or SafetensorsDType.I64 or SafetensorsDType.F64 => 64,
        SafetensorsDType.F6_E2M3 or SafetensorsDType.F6_E3M2 => 6,
        SafetensorsDType.F4 => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown Safetensors dtype"),
    };

    /// <summary>The ggml type the engine computes with for this dtype, or null when there is none
    /// (unsigned ints, bool, FP8/FP6/FP4: readable, but not usable as weights as they are).</summary>
    /// <param name="dtype">The dtype.</param>
    public static GgmlType? ToGgml(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.F32 => GgmlType.F32,
        SafetensorsDType.F16 => GgmlType.F16,
        SafetensorsDType.BF16 => GgmlType.BF16,
        SafetensorsDType.F64 => GgmlType.F64,
        SafetensorsDType.I8 => GgmlType.I8,
        SafetensorsDType.I16 => GgmlType.I16,
        SafetensorsDType.I32 => GgmlType.I32,
        SafetensorsDType.I64 => GgmlType.I64,
        _ => null,
    };

    /// <summary>Every dtype, for messages that list what is accepted.</summary>
    public static string AllNames => string.Join(", ", Enum.GetNames<SafetensorsDType>());
}
