using System.Text.Json;

namespace Engine.Formats.HuggingFace;

/// <summary>Typed, strict access to the fields of a JSON object (config.json and the objects inside it).
/// A field that is absent or JSON null reads as "not given"; one of the wrong type is an InvalidConfig
/// error naming the field, the expected type and what was found. Range checks are the caller's.</summary>
internal sealed class JsonConfigReader
{
    readonly JsonElement _object;
    readonly string _prefix;
    public string? FilePath { get; }

    public JsonConfigReader(JsonElement obj, string? filePath, string prefix = "")
    {
        _object = obj;
        FilePath = filePath;
        _prefix = prefix;
    }

    public string FieldName(string name) => _prefix + name;

    public bool Has(string name) => TryGet(name, out _);

    bool TryGet(string name, out JsonElement value) =>
        _object.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    public long? Integer(string name)
    {
        if (!TryGet(name, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long result))
            throw WrongType(name, "an integer", v);
        return result;
    }

    /// <summary>An integer that must fit in an int and be at least <paramref name="min"/>.</summary>
    public int? Int(string name, int min)
    {
        long? value = Integer(name);
        if (value is null) return null;
        if (value < min || value > int.MaxValue)
            throw OutOfRange(name, $"an integer in [{min}, {int.MaxValue}]", value.Value.ToString());
        return (int)value;
    }

    public int RequiredInt(string name, int min) => Int(name, min) ?? throw Missing(name);

    /// <summary>A finite number (integers allowed: "rope_theta": 10000).</summary>
    public double? Double(string name)
    {
        if (!TryGet(name, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double result))
            throw WrongType(name, "a number", v);
        if (!double.IsFinite(result)) throw OutOfRange(name, "a finite number", v.GetRawText());
        return result;
    }

    /// <summary>A finite number strictly greater than zero.</summary>
    public double? Positive(string name)
    {
        double? value = Double(name);
        if (value is <= 0) throw OutOfRange(name, "a number > 0", value.Value.ToString("R"));
        return value;
    }

    public bool? Bool(string name)
    {
        if (!TryGet(name, out var v)) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw WrongType(name, "true or false", v),
        };
    }

    public string? String(string name)
    {
        if (!TryGet(name, out var v)) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw WrongType(name, "a string", v);
    }

    public IReadOnlyList<string>? StringArray(string name) =>
        Array(name, "an array of strings", e => e.ValueKind == JsonValueKind.String ? (true, e.GetString()!) : (false, ""));

    public IReadOnlyList<double>? DoubleArray(string name) =>
        Array(name, "an array of finite numbers",
            e => e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out double d) && double.IsFinite(d) ? (true, d) : (false, 0));

    public IReadOnlyList<long>? IntegerArray(string name) =>
        Array(name, "an array of integers", e => e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out long l) ? (true, l) : (false, 0L));

    /// <summary>An integer or an array of integers (eos_token_id has both forms in the wild).</summary>
    public IReadOnlyList<long>? IntegerOrArray(string name)
    {
        if (!TryGet(name, out var v)) return null;
        if (v.ValueKind == JsonValueKind.Number) return [Integer(name)!.Value];
        if (v.ValueKind == JsonValueKind.Array) return IntegerArray(name);
        throw WrongType(name, "an integer or an array of integers", v);
    }

    /// <summary>A nested object, or null when absent.</summary>
    public JsonConfigReader? Object(string name)
    {
        if (!TryGet(name, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Object) throw WrongType(name, "an object", v);
        return new JsonConfigReader(v, FilePath, FieldName(name) + ".");
    }

    IReadOnlyList<T>? Array<T>(string name, string expected, Func<JsonElement, (bool Ok, T Value)> convert)
    {
        if (!TryGet(name, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Array) throw WrongType(name, expected, v);
        var list = new List<T>(v.GetArrayLength());
        foreach (var item in v.EnumerateArray())
        {
            var (ok, value) = convert(item);
            if (!ok) throw WrongType(name, expected, item);
            list.Add(value);
        }
        return list;
    }

    public ModelFormatException Missing(string name) =>
        new(FormatErrorKind.MissingKey, "required config field is missing", FieldName(name), filePath: FilePath);

    public ModelFormatException OutOfRange(string name, string expected, string actual) =>
        new(FormatErrorKind.InvalidConfig, "config value out of range", FieldName(name), null, expected, actual, FilePath);

    ModelFormatException WrongType(string name, string expected, JsonElement actual) =>
        new(FormatErrorKind.InvalidConfig, "config value of the wrong type", FieldName(name), null, expected,
            Describe(actual), FilePath);

    static string Describe(JsonElement e)
    {
        string raw = e.GetRawText();
        return $"{e.ValueKind.ToString().ToLowerInvariant()} {(raw.Length > 60 ? raw[..60] + "..." : raw)}";
    }
}
