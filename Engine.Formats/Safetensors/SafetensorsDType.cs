namespace Engine.Formats.Safetensors;

/// <summary>Element types of the Safetensors format, named exactly as they are spelled in a file's header.
/// Sub-byte types (F4, F6_*) are packed; a tensor of them must still end on a byte boundary.</summary>
public enum SafetensorsDType
{
    BOOL, U8, I8, U16, I16, U32, I32, U64, I64,
    F16, BF16, F32, F64,
    /// <summary>8-bit floats (OCP FP8): 4 exponent bits / 3 mantissa bits, and 5 / 2.</summary>
    F8_E4M3, F8_E5M2,
    /// <summary>8-bit exponent-only scale (OCP MX block scales).</summary>
    F8_E8M0,
    /// <summary>6-bit floats (OCP MXFP6) and the 4-bit float (MXFP4 E2M1).</summary>
    F6_E2M3, F6_E3M2, F4,
}

public static class SafetensorsDTypes
{
    /// <summary>Parses a header dtype string. Ordinal and case-sensitive, as the reference implementation is:
    /// "f32" is not a dtype.</summary>
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

    /// <summary>Bits per element.</summary>
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
