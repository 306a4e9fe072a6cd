using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Engine.Tests.Grammar;

/// <summary>A small JSON Schema validator for the keywords the generation tests use (type, properties, required,
/// additionalProperties, items, prefixItems, minItems, maxItems, enum, const, minLength, maxLength, pattern, format,
/// minimum, maximum, exclusiveMinimum, exclusiveMaximum, anyOf, oneOf, allOf, $ref, nullable). Returns the first
/// violation, or null.</summary>
internal static class MiniSchemaValidator
{
    public static string? Validate(JsonElement schema, JsonElement value) => Check(schema, value, schema, "$");

    static string? Check(JsonElement root, JsonElement value, JsonElement s, string path)
    {
        if (s.TryGetProperty("$ref", out var r))
        {
            var target = root;
            foreach (var part in r.GetString()!.Substring(2).Split('/')) target = target.GetProperty(part);
            return Check(root, value, target, path);
        }
        if (s.TryGetProperty("nullable", out var n) && n.ValueKind == JsonValueKind.True && value.ValueKind == JsonValueKind.Null) return null;
        if (s.TryGetProperty("anyOf", out var anyOf) || s.TryGetProperty("oneOf", out anyOf))
        {
            int ok = anyOf.EnumerateArray().Count(a => Check(root, value, a, path) is null);
            if (ok == 0) return $"{path}: matches no alternative";
        }
        if (s.TryGetProperty("allOf", out var allOf))
            foreach (var a in allOf.EnumerateArray())
                if (Check(root, value, a, path) is { } e) return e;
        if (s.TryGetProperty("const", out var c) && !JsonElement.DeepEquals(c, value)) return $"{path}: not the const";
        if (s.TryGetProperty("enum", out var en) && !en.EnumerateArray().Any(x => JsonElement.DeepEquals(x, value))) return $"{path}: not in enum";
        if (s.TryGetProperty("type", out var type))
        {
            var types = type.ValueKind == JsonValueKind.Array ? type.EnumerateArray().Select(t => t.GetString()!).ToArray() : [type.GetString()!];
            if (!types.Any(t => IsType(value, t))) return $"{path}: not of type {string.Join("/", types)}";
        }
        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
            {
                var props = s.TryGetProperty("properties", out var p) ? p : default;
                if (s.TryGetProperty("required", out var req))
                    foreach (var name in req.EnumerateArray())
                        if (!value.TryGetProperty(name.GetString()!, out _)) return $"{path}: missing required {name}";
                var seen = new HashSet<string>();
                foreach (var prop in value.EnumerateObject())
                {
                    if (!seen.Add(prop.Name)) return $"{path}: duplicate key {prop.Name}";
                    if (props.ValueKind == JsonValueKind.Object && props.TryGetProperty(prop.Name, out var ps))
                    {
                        if (Check(root, prop.Value, ps, path + "." + prop.Name) is { } e) return e;
                    }
                    else if (s.TryGetProperty("additionalProperties", out var ap))
                    {
                        if (ap.ValueKind == JsonValueKind.False) return $"{path}: additional property {prop.Name}";
                        if (ap.ValueKind == JsonValueKind.Object && Check(root, prop.Value, ap, path + "." + prop.Name) is { } e) return e;
                    }
                }
                break;
            }
            case JsonValueKind.Array:
            {
                var items = value.EnumerateArray().ToArray();
                if (s.TryGetProperty("minItems", out var mi) && items.Length < mi.GetInt32()) return $"{path}: fewer than {mi} items";
                if (s.TryGetProperty("maxItems", out var ma) && items.Length > ma.GetInt32()) return $"{path}: more than {ma} items";
                if (s.TryGetProperty("prefixItems", out var pre))
                {
                    var ps = pre.EnumerateArray().ToArray();
                    if (items.Length != ps.Length) return $"{path}: tuple of {items.Length}, expected {ps.Length}";
                    for (int i = 0; i < ps.Length; i++) if (Check(root, items[i], ps[i], $"{path}[{i}]") is { } e) return e;
                }
                if (s.TryGetProperty("items", out var it))
                    for (int i = 0; i < items.Length; i++) if (Check(root, items[i], it, $"{path}[{i}]") is { } e) return e;
                break;
            }
            case JsonValueKind.String:
            {
                var str = value.GetString()!;
                int len = str.EnumerateRunes().Count();
                if (s.TryGetProperty("minLength", out var mn) && len < mn.GetInt32()) return $"{path}: shorter than {mn}";
                if (s.TryGetProperty("maxLength", out var mx) && len > mx.GetInt32()) return $"{path}: longer than {mx}";
                if (s.TryGetProperty("pattern", out var pat) && !Regex.IsMatch(str, pat.GetString()!)) return $"{path}: \"{str}\" does not match {pat}";
                if (s.TryGetProperty("format", out var f))
                {
                    bool ok = f.GetString() switch
                    {
                        "date" => DateOnly.TryParseExact(str, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out _) || Regex.IsMatch(str, @"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"),
                        "time" => Regex.IsMatch(str, @"^([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{3})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"),
                        "date-time" => Regex.IsMatch(str, @"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{3})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"),
                        "uuid" => Guid.TryParseExact(str, "D", out _),
                        _ => true,
                    };
                    if (!ok) return $"{path}: \"{str}\" is not a {f}";
                }
                break;
            }
            case JsonValueKind.Number:
            {
                var d = value.GetDouble();
                if (s.TryGetProperty("minimum", out var mn) && d < mn.GetDouble()) return $"{path}: {d} < minimum {mn}";
                if (s.TryGetProperty("maximum", out var mx) && d > mx.GetDouble()) return $"{path}: {d} > maximum {mx}";
                if (s.TryGetProperty("exclusiveMinimum", out var emn) && d <= emn.GetDouble()) return $"{path}: {d} <= exclusiveMinimum {emn}";
                if (s.TryGetProperty("exclusiveMaximum", out var emx) && d >= emx.GetDouble()) return $"{path}: {d} >= exclusiveMaximum {emx}";
                break;
            }
        }
        return null;
    }

    static bool IsType(JsonElement v, string t) => t switch
    {
        "object" => v.ValueKind == JsonValueKind.Object,
        "array" => v.ValueKind == JsonValueKind.Array,
        "string" => v.ValueKind == JsonValueKind.String,
        "integer" => v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out _) && !v.GetRawText().Contains('.') && !v.GetRawText().Contains('e', StringComparison.OrdinalIgnoreCase),
        "number" => v.ValueKind == JsonValueKind.Number,
        "boolean" => v.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "null" => v.ValueKind == JsonValueKind.Null,
        _ => false,
    };
}
