namespace Engine.Formats.Gguf;

/// <summary>Typed access to metadata: a known key holding the wrong type is an error naming the key, the
/// expected and the actual type (checklist G8); a required key that is absent says so (G9).</summary>
public static class GgufMetadataAccess
{
    public static string? GetStringOrNull(this IReadOnlyDictionary<string, GgufValue> md, string key) =>
        md.TryGetValue(key, out var v) ? (v.Value as string ?? throw WrongType(key, "string", v)) : null;

    public static string GetString(this IReadOnlyDictionary<string, GgufValue> md, string key) =>
        md.GetStringOrNull(key) ?? throw Missing(key);

    /// <summary>An integer of any integer type (files in the wild use uint32, int32 and uint64 for the same key).</summary>
    public static long? GetIntegerOrNull(this IReadOnlyDictionary<string, GgufValue> md, string key)
    {
        if (!md.TryGetValue(key, out var v)) return null;
        return v.AsInteger() ?? throw WrongType(key, "integer", v);
    }

    public static long GetInteger(this IReadOnlyDictionary<string, GgufValue> md, string key) =>
        md.GetIntegerOrNull(key) ?? throw Missing(key);

    public static double? GetFloatOrNull(this IReadOnlyDictionary<string, GgufValue> md, string key)
    {
        if (!md.TryGetValue(key, out var v)) return null;
        return v.AsFloat() ?? throw WrongType(key, "float32", v);
    }

    public static bool? GetBoolOrNull(this IReadOnlyDictionary<string, GgufValue> md, string key)
    {
        if (!md.TryGetValue(key, out var v)) return null;
        return v.Value is bool b ? b : throw WrongType(key, "bool", v);
    }

    public static T[]? GetArrayOrNull<T>(this IReadOnlyDictionary<string, GgufValue> md, string key)
    {
        if (!md.TryGetValue(key, out var v)) return null;
        return v.Value as T[] ?? throw WrongType(key, "array[" + ElementName<T>() + "]", v);
    }

    static string ElementName<T>() => typeof(T) == typeof(string) ? "string" : typeof(T) == typeof(float) ? "float32"
        : typeof(T) == typeof(int) ? "int32" : typeof(T) == typeof(uint) ? "uint32" : typeof(T).Name.ToLowerInvariant();

    public static ModelFormatException WrongType(string key, string expected, GgufValue actual) =>
        new(FormatErrorKind.WrongMetadataType, $"metadata '{key}' has the wrong type", field: key, expected: expected, actual: actual.TypeName);

    public static ModelFormatException Missing(string key) =>
        new(FormatErrorKind.MissingKey, $"required metadata key '{key}' is missing", field: key);
}
