namespace Engine.Formats.Gguf;

/// <summary>Metadata value type ids of the GGUF format (gguf.h), with the .NET type <see cref="GgufValue.Value"/>
/// holds for each.</summary>
public enum GgufValueType : uint
{
    /// <summary>Unsigned 8-bit integer (byte).</summary>
    UInt8 = 0,
    /// <summary>Signed 8-bit integer (sbyte).</summary>
    Int8 = 1,
    /// <summary>Unsigned 16-bit integer (ushort).</summary>
    UInt16 = 2,
    /// <summary>Signed 16-bit integer (short).</summary>
    Int16 = 3,
    /// <summary>Unsigned 32-bit integer (uint).</summary>
    UInt32 = 4,
    /// <summary>Signed 32-bit integer (int).</summary>
    Int32 = 5,
    /// <summary>32-bit float (float).</summary>
    Float32 = 6,
    /// <summary>Boolean, one byte that must be 0 or 1 (bool).</summary>
    Bool = 7,
    /// <summary>Length-prefixed UTF-8 string (string).</summary>
    String = 8,
    /// <summary>Array of one element type, which is not itself an array (a typed .NET array).</summary>
    Array = 9,
    /// <summary>Unsigned 64-bit integer (ulong).</summary>
    UInt64 = 10,
    /// <summary>Signed 64-bit integer (long).</summary>
    Int64 = 11,
    /// <summary>64-bit float (double).</summary>
    Float64 = 12,
}

internal static class GgufValueTypes
{
    /// <summary>Bytes of one fixed-size value; strings and arrays have no fixed size (0).</summary>
    public static int FixedSize(GgufValueType type) => type switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
        _ => 0,
    };

    public static bool IsDefined(uint id) => id <= (uint)GgufValueType.Float64;

    public static bool IsInteger(GgufValueType type) => type is GgufValueType.UInt8 or GgufValueType.Int8
        or GgufValueType.UInt16 or GgufValueType.Int16 or GgufValueType.UInt32 or GgufValueType.Int32
        or GgufValueType.UInt64 or GgufValueType.Int64;
}
