using System.Collections;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Engine.Chat.Jinja;

/// <summary>Turns caller data into template values: JSON keeps its object key order, and a number is an int when its
/// text has no fraction or exponent (JSON 1 is Python 1, 1.0 is 1.0), as json.loads reads it.</summary>
internal static class JinjaValues
{
    const int MaxDepth = 128;

    public static object? FromJson(JsonElement e, int depth = 0)
    {
        if (depth > MaxDepth) throw new JinjaTemplateException($"JSON input nested deeper than {MaxDepth} levels");
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                var dict = new JinjaDict();
                foreach (var p in e.EnumerateObject()) dict.Set(p.Name, FromJson(p.Value, depth + 1));
                return dict;
            case JsonValueKind.Array:
                return new JinjaList([.. e.EnumerateArray().Select(x => FromJson(x, depth + 1))]);
            case JsonValueKind.String: return e.GetString();
            case JsonValueKind.True: return true;
            case JsonValueKind.False: return false;
            case JsonValueKind.Number: return Number(e.GetRawText());
            default: return null;
        }
    }

    public static object? FromJson(JsonNode? node) => node is null ? null : FromJson(JsonSerializer.SerializeToElement(node));

    static object Number(string text)
    {
        if (text.IndexOfAny(['.', 'e', 'E']) < 0)
        {
            if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n)) return n;
            // Python's json reads any integer exactly; keep the digits this large too (up to Python's 4,300).
            if (text.Length <= 4300) return Py.Normalize(System.Numerics.BigInteger.Parse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture));
        }
        return double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
    }

    /// <summary>Plain .NET data (string, bool, integers, floating point, dictionaries with string keys, sequences,
    /// JSON elements and nodes) as template values; anything else is refused, so templates only ever see values.</summary>
    public static object? FromObject(object? value, int depth = 0)
    {
        if (depth > MaxDepth) throw new JinjaTemplateException($"input nested deeper than {MaxDepth} levels");
        switch (value)
        {
            case null: return null;
            case string or bool or long or double: return value;
            case int or short or byte or sbyte or ushort or uint: return Convert.ToInt64(value, CultureInfo.InvariantCulture);
            case float f: return (double)f;
            case decimal m: return (double)m;
            case JsonElement e: return FromJson(e, depth);
            case JsonNode node: return FromJson(node);
            case JinjaList or JinjaDict: return value;
            case IDictionary<string, object?> map:
                var dict = new JinjaDict();
                foreach (var (key, item) in map) dict.Set(key, FromObject(item, depth + 1));
                return dict;
            case IReadOnlyDictionary<string, object?> map:
                var ro = new JinjaDict();
                foreach (var (key, item) in map) ro.Set(key, FromObject(item, depth + 1));
                return ro;
            case IEnumerable sequence:
                return new JinjaList([.. sequence.Cast<object?>().Select(x => FromObject(x, depth + 1))]);
            default:
                throw new JinjaTemplateException($"a {value.GetType().Name} cannot be passed to a template");
        }
    }
}
