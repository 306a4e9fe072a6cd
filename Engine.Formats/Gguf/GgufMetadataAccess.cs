namespace Engine.Formats.Gguf;

/// <summary>Typed access to metadata (<see cref="GgufFile.Metadata"/>): a key holding the wrong type is an error
/// naming the key, the expected and the actual type (checklist G8); a required key that is absent says so (G9).
/// The <c>OrNull</c> getters return null only for an absent key, never for one of the wrong type.</summary>
public static class GgufMetadataAccess
{
    /// <summary>A string value, or null when the key is absent.</summary>
    /// <param name="md">The file's metadata.</param>
    /// <param name="key">The metadata key.</param>
    /// <exception cref="ModelFormatException">The key holds something other than a string (kind WrongMetadataType).</exception>
    public static string? GetStringOrNull(this IReadOnlyDictionary<string, GgufValue> md, string key) =>
        md.TryGetValue(key, out var v) ? (v.Value as string ?? throw WrongType(key, "string", v)) : null;

    /// <summary>A string value that must be present.</summary>
    /// <param name="md">The file's metadata.</param>
    /// <param name="key">The metadata key.</param>
    /// <exception cref="ModelFormatException">The key is absent (kind MissingKey) or holds something other than a
    /// string (kind WrongMetadataType).</exception>
    public static string GetString(this IReadOnlyDictionary<string, GgufValue> md, string key) =>
        md.GetStringOrNull(key) ?? throw Missing(key);

    /// <summary>An integer of any integer type, or null when the key is absent (files in the wild use uint32, int32 and
    /// uint64 for the same key).</summary>
    /// <param name="md">The file's metadata.</param>
    /// <param name="key">The metadata key.</param>
    /// <exception cref="ModelFormatException">The key holds a non-integer, or a uint64 over <see cref="long.MaxValue"/>
    /// (kind WrongMetadataType).</exception>
    public static long? GetIntegerOrNull(this IReadOnlyDictionary<string, GgufValue> md, string key)
    {
        if (!md.TryGetValue(key, out var v)) return null;
        return v.AsInteger() ?? throw WrongType(key, "integer", v);
    }

    /// <summary>An integer of any integer type that must be present.</summary>
    /// <param name="md">The file's metadata.</param>
    /// <param name="key">The metadata key.</param>
    /// <exception cref="ModelFormatException">The key is absent (kind MissingKey), holds a non-integer, or holds a
    /// uint64 over <see cref="long.MaxValue"/> (kind WrongMetadataType).</exception>
    public static long GetInteger(this IReadOnlyDictionary<string, GgufValue> md, string key) =>
        md.GetIntegerOrNull(key) ?? throw Missing(key);

    /// <summary>A float32 or float64 value (integers are not converted), or null when the key is absent.</summary>
    /// <param name="md">The file's metadata.</param>
    /// <param name="key">The metadata key.</param>
    /// <exception cref="ModelFormatException">The key holds something other than a float (kind WrongMetadataType).</exception>
    public static double? GetFloatOrNull(this IReadOnlyDictionary<string, GgufValue> md, string key)
    {
        if (!md.TryGetValue(key, out var v)) return null;
        return v.AsFloat() ?? throw WrongType(key, "float32", v);
    }

    /// <summary>A bool value, or null when the key is absent.</summary>
    /// <param name="md">The file's metadata.</param>
    /// <param name="key">The metadata key.</param>
    /// <exception cref="ModelFormatException">The key holds something other than a bool (kind WrongMetadataType).</exception>
    public static bool? GetBoolOrNull(this IReadOnlyDictionary<string, GgufValue> md, string key)
    {
        if (!md.TryGetValue(key, out var v)) return null;
        return v.Value is bool b ? b : throw WrongType(key, "bool", v);
    }

    /// <summary>An array of <typeparamref name="T"/> (see <see cref="GgufValue"/> for the .NET type of each GGUF type),
    /// or null when the key is absent. The array returned is the one the file holds: copy it before changing it.</summary>
    /// <typeparam name="T">The element type: string, float, int, uint, ...</typeparam>
    /// <param name="md">The file's metadata.</param>
    /// <param name="key">The metadata key.</param>
    /// <exception cref="ModelFormatException">The key holds a scalar or an array of another element type (kind
    /// WrongMetadataType).</exception>
    public static T[]? GetArrayOrNull<T>(this IReadOnlyDictionary<string, GgufValue> md, string key)
    {
        if (!md.TryGetValue(key, out var v)) return null;
        return v.Value as T[] ?? throw WrongType(key, "array[" + ElementName<T>() + "]", v);
    }

    static string ElementName<T>() => typeof(T) == typeof(string) ? "string" : typeof(T) == typeof(float) ? "float32"
        : typeof(T) == typeof(int) ? "int32" : typeof(T) == typeof(uint) ? "uint32" : typeof(T).Name.ToLowerInvariant();

    /// <summary>The error for a key of the wrong type (for loaders that read a key by hand).</summary>
    internal static ModelFormatException WrongType(string key, string expected, GgufValue actual) =>
        new(FormatErrorKind.WrongMetadataType, $"metadata '{key}' has the wrong type", field: key, expected: expected, actual: actual.TypeName);

    /// <summary>The error for a required key that is absent.</summary>
    internal static ModelFormatException Missing(string key) =>
        new(FormatErrorKind.MissingKey, $"required metadata key '{key}' is missing", field: key);
}
