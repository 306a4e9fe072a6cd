using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Engine.Grammar;

/// <summary>
/// JSON Schema to GBNF, mirroring llama.cpp's common/json-schema-to-grammar.cpp and common/json-schema.cpp (MIT,
/// commit de3ff815): the same rule names, the same rule bodies (objects with required/optional properties and
/// additionalProperties, arrays with items/prefixItems/minItems/maxItems, enum, const, strings with
/// minLength/maxLength/pattern/format, integers with minimum/maximum as bounded digit sequences, anyOf/oneOf/allOf,
/// local $ref to #/definitions and #/$defs, type arrays), the rules written sorted by name.
///
/// Differences, on purpose: a keyword this converter does not implement is an error naming it (llama.cpp ignores
/// unknown keywords), and so is a pattern it cannot translate (llama.cpp warns and accepts any string). OpenAPI's
/// <c>nullable: true</c> is read as "or null".
/// </summary>
internal sealed partial class JsonSchemaToGrammar
{
    const string SpaceRule = "| \" \" | \"\\n\"{1,2} [ \\t]{0,20}";

    sealed record BuiltinRule(string Content, string[] Deps);

    static readonly Dictionary<string, BuiltinRule> PrimitiveRules = new()
    {
        ["boolean"] = new("(\"true\" | \"false\")", []),
        ["decimal-part"] = new("[0-9]{1,16}", []),
        ["integral-part"] = new("[0] | [1-9] [0-9]{0,15}", []),
        ["number"] = new("(\"-\"? integral-part) (\".\" decimal-part)? ([eE] [-+]? integral-part)?", ["integral-part", "decimal-part"]),
        ["integer"] = new("(\"-\"? integral-part)", ["integral-part"]),
        ["value"] = new("object | array | string | number | boolean | null", ["object", "array", "string", "number", "boolean", "null"]),
        ["object"] = new("\"{\" space ( string \":\" space value (\",\" space string \":\" space value)* )? space \"}\"", ["string", "value"]),
        ["array"] = new("\"[\" space ( value (\",\" space value)* )? space \"]\"", ["value"]),
        ["uuid"] = new("\"\\\"\" [0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{12} \"\\\"\"", []),
        ["char"] = new("[^\"\\\\\\x7F\\x00-\\x1F] | [\\\\] ([\"\\\\bfnrt] | \"u\" [0-9a-fA-F]{4})", []),
        ["string"] = new("\"\\\"\" char* \"\\\"\"", ["char"]),
        ["null"] = new("\"null\"", []),
    };

    static readonly Dictionary<string, BuiltinRule> StringFormatRules = new()
    {
        ["date"] = new("[0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [1-2] [0-9] | \"3\" [0-1] )", []),
        ["time"] = new("([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{3} )? ( \"Z\" | ( \"+\" | \"-\" ) ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )", []),
        ["date-time"] = new("date \"T\" time", ["date", "time"]),
        ["date-string"] = new("\"\\\"\" date \"\\\"\"", ["date"]),
        ["time-string"] = new("\"\\\"\" time \"\\\"\"", ["time"]),
        ["date-time-string"] = new("\"\\\"\" date-time \"\\\"\"", ["date-time"]),
    };

    /// <summary>Keywords read here, and annotations that do not constrain the output.</summary>
    static readonly HashSet<string> KnownKeywords =
    [
        "type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
        "enum", "const", "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "oneOf", "anyOf", "allOf", "$ref", "definitions", "$defs", "nullable",
        "$schema", "$id", "$comment", "title", "description", "default", "examples", "readOnly", "writeOnly", "deprecated",
    ];

    /// <summary>Any JSON object, like llama.cpp's grammars/json.gbnf (what a converter writes for {"type":"object"}).</summary>
    public static string JsonObjectGrammar => LazyJsonObject.Value;
    static readonly Lazy<string> LazyJsonObject = new(() => Convert("{\"type\":\"object\"}"));

    static readonly Regex InvalidRuleChars = new("[^a-zA-Z0-9-]+", RegexOptions.CultureInvariant);
    const int MaxPatternDepth = 100;
    const int MaxRefDepth = 64;

    readonly SortedDictionary<string, string> _rules = new(StringComparer.Ordinal) { ["space"] = SpaceRule };
    readonly HashSet<string> _refsBeingResolved = [];
    JsonElement _root; // what local $refs resolve against: the schema being visited
    int _depth;

    JsonSchemaToGrammar(JsonElement root) => _root = root;

    /// <summary>Converts a JSON schema (text) to GBNF.</summary>
    /// <exception cref="GrammarException">The text is not JSON, the schema is invalid, or it uses an unsupported keyword
    /// (the message names it).</exception>
    public static string Convert(string schemaJson)
    {
        ArgumentNullException.ThrowIfNull(schemaJson);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(schemaJson, new JsonDocumentOptions { MaxDepth = 128 }); }
        catch (JsonException e) { throw new GrammarException("JSON schema is not valid JSON: " + e.Message); }
        using (doc)
        {
            var c = new JsonSchemaToGrammar(doc.RootElement);
            c.Visit(doc.RootElement, "", "#");
            return c.Format();
        }
    }

    string Format()
    {
        var sb = new StringBuilder();
        foreach (var (k, v) in _rules) sb.Append(k).Append(" ::= ").Append(v).Append('\n');
        return sb.ToString();
    }

    static GrammarException Fail(string path, string message) => new($"JSON schema {path}: {message}");

    string AddRule(string name, string rule)
    {
        var esc = InvalidRuleChars.Replace(name, "-");
        if (!_rules.TryGetValue(esc, out var existing) || existing == rule)
        {
            _rules[esc] = rule;
            return esc;
        }
        int i = 0;
        while (_rules.TryGetValue(esc + i.ToString(CultureInfo.InvariantCulture), out var e) && e != rule) i++;
        var key = esc + i.ToString(CultureInfo.InvariantCulture);
        _rules[key] = rule;
        return key;
    }

    string AddPrimitive(string name, BuiltinRule rule)
    {
        var n = AddRule(name, rule.Content);
        foreach (var dep in rule.Deps)
        {
            var depRule = PrimitiveRules.GetValueOrDefault(dep) ?? StringFormatRules[dep];
            if (!_rules.ContainsKey(dep)) AddPrimitive(dep, depRule);
        }
        return n;
    }

    static bool IsReserved(string name) => name == "root" || PrimitiveRules.ContainsKey(name) || StringFormatRules.ContainsKey(name);

    // ---- schema classification (common/json-schema.cpp build_node) ----

    enum Kind { Ref, AnyOf, AllOf, Const, Enum, Object, Tuple, Array, String, Integer, Number, Boolean, Null, Any }

    static bool Has(JsonElement s, string key) => s.TryGetProperty(key, out _);

    static void CheckKeywords(JsonElement s, string path)
    {
        if (s.ValueKind != JsonValueKind.Object) throw Fail(path, "schema must be an object");
        foreach (var p in s.EnumerateObject())
            if (!KnownKeywords.Contains(p.Name))
                throw Fail(path, $"unsupported keyword '{p.Name}'");
    }

    Kind Classify(JsonElement s, string path, out JsonElement typeOverride)
    {
        typeOverride = default;
        CheckKeywords(s, path);
        if (Has(s, "$ref")) return Kind.Ref;
        if (Has(s, "oneOf") || Has(s, "anyOf")) return Kind.AnyOf;
        if (s.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.Array) return Kind.AnyOf;
        if (s.TryGetProperty("nullable", out var nullable) && nullable.ValueKind == JsonValueKind.True) return Kind.AnyOf;
        if (Has(s, "const")) return Kind.Const;
        if (Has(s, "enum")) return Kind.Enum;
        string typeName = "";
        if (Has(s, "type"))
        {
            if (type.ValueKind != JsonValueKind.String) throw Fail(path, "type must be a string or an array of strings");
            typeName = type.GetString()!;
        }
        bool hasProperties = Has(s, "properties") || (s.TryGetProperty("additionalProperties", out var ap) && ap.ValueKind != JsonValueKind.True);
        switch (typeName)
        {
            case "":
                if (hasProperties) return Kind.Object;
                if (Has(s, "allOf")) return Kind.AllOf;
                if (Has(s, "items") || Has(s, "prefixItems")) return IsTuple(s) ? Kind.Tuple : Kind.Array;
                if (Has(s, "pattern") || Has(s, "minLength") || Has(s, "maxLength") || FormatOf(s, path) != null) return Kind.String;
                return Kind.Any;
            case "object": return !hasProperties && Has(s, "allOf") ? Kind.AllOf : Kind.Object;
            case "string": return Has(s, "allOf") ? Kind.AllOf : Kind.String;
            case "array": return IsTuple(s) ? Kind.Tuple : Kind.Array;
            case "integer": return Kind.Integer;
            case "number": return Kind.Number;
            case "boolean": return Kind.Boolean;
            case "null": return Kind.Null;
            default: throw Fail(path, "unrecognized type " + typeName);
        }
    }

    static bool IsTuple(JsonElement s)
    {
        var key = Has(s, "items") ? "items" : "prefixItems";
        return s.TryGetProperty(key, out var items) && items.ValueKind == JsonValueKind.Array;
    }

    static string? FormatOf(JsonElement s, string path)
    {
        if (!s.TryGetProperty("format", out var f)) return null;
        if (f.ValueKind != JsonValueKind.String) throw Fail(path, "format must be a string");
        var format = f.GetString()!;
        if (format is "date" or "time" or "date-time") return format;
        if (format == "uuid" || (format.Length == 5 && format.StartsWith("uuid", StringComparison.Ordinal) && format[4] is >= '1' and <= '5')) return "uuid";
        throw Fail(path, $"unsupported keyword 'format' value '{format}' (supported: date, time, date-time, uuid)");
    }

    static int Count(JsonElement s, string key, string path, int fallback)
    {
        if (!s.TryGetProperty(key, out var v)) return fallback;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out var n) || n < 0)
            throw Fail(path, $"{key} must be a non-negative integer");
        return n > int.MaxValue ? int.MaxValue : (int)n;
    }

    JsonElement ResolveRef(string reference, string path)
    {
        if (!reference.StartsWith("#/", StringComparison.Ordinal))
            throw Fail(path, $"unsupported $ref {reference}, only references into the same document are supported");
        var target = _root;
        foreach (var raw in reference[2..].Split('/'))
        {
            var sel = raw.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
            if (target.ValueKind == JsonValueKind.Object && target.TryGetProperty(sel, out var next)) target = next;
            else if (target.ValueKind == JsonValueKind.Array && int.TryParse(sel, NumberStyles.None, CultureInfo.InvariantCulture, out var idx) && idx < target.GetArrayLength()) target = target[idx];
            else throw Fail(path, $"cannot resolve $ref {reference}, {sel} not found");
        }
        return target;
    }

    // ---- conversion (json-schema-to-grammar.cpp visit) ----

    string Visit(JsonElement schema, string name, string path)
    {
        if (++_depth > 256) throw Fail(path, "schema nested too deeply");
        try { return VisitCore(schema, name, path); }
        finally { _depth--; }
    }

    string VisitCore(JsonElement schema, string name, string path)
    {
        var ruleName = IsReserved(name) ? name + "-" : name.Length == 0 ? "root" : name;
        var subName = name + (name.Length == 0 ? "" : "-");
        var kind = Classify(schema, path, out _);
        switch (kind)
        {
            case Kind.Ref:
            {
                var r = schema.GetProperty("$ref");
                if (r.ValueKind != JsonValueKind.String) throw Fail(path, "$ref must be a string");
                return AddRule(ruleName, VisitRef(r.GetString()!, path));
            }
            case Kind.AnyOf:
                return AddRule(ruleName, UnionRule(name, Alternatives(schema, path)));
            case Kind.AllOf:
                return VisitAllOf(schema, name, ruleName, path);
            case Kind.Const:
                return AddRule(ruleName, ConstantRule(schema.GetProperty("const")));
            case Kind.Enum:
            {
                var values = schema.GetProperty("enum");
                if (values.ValueKind != JsonValueKind.Array || values.GetArrayLength() == 0) throw Fail(path, "enum must be a non-empty array");
                return AddRule(ruleName, "(" + string.Join(" | ", values.EnumerateArray().Select(ConstantRule)) + ")");
            }
            case Kind.Object:
            {
                var (props, required, additional, additionalAny) = ObjectParts(schema, path);
                if (props.Count == 0 && additionalAny) return AddRule(ruleName, AddPrimitive("object", PrimitiveRules["object"]));
                return AddRule(ruleName, BuildObjectRule(props, required, name, additional, additionalAny, path));
            }
            case Kind.Tuple:
            {
                var key = Has(schema, "items") ? "items" : "prefixItems";
                var items = schema.GetProperty(key);
                var rule = new StringBuilder("\"[\" space ");
                int i = 0;
                foreach (var item in items.EnumerateArray())
                {
                    if (i > 0) rule.Append(" \",\" space ");
                    rule.Append(Visit(item, subName + "tuple-" + i.ToString(CultureInfo.InvariantCulture), $"{path}/{key}/{i}"));
                    i++;
                }
                rule.Append(" space \"]\"");
                return AddRule(ruleName, rule.ToString());
            }
            case Kind.Array:
            {
                int minItems = Count(schema, "minItems", path, 0);
                int maxItems = Count(schema, "maxItems", path, -1);
                var key = Has(schema, "items") ? "items" : "prefixItems";
                bool anyItems = !schema.TryGetProperty(key, out var items) || Classify(items, path + "/" + key, out _) == Kind.Any;
                if (anyItems && minItems == 0 && maxItems < 0) return VisitPrimitive(ruleName, "array");
                var itemRule = anyItems ? AddRule(subName + "item", AddPrimitive("value", PrimitiveRules["value"])) : Visit(items, subName + "item", path + "/" + key);
                return AddRule(ruleName, "\"[\" space " + BuildRepetition(itemRule, minItems, maxItems < 0 ? int.MaxValue : maxItems, "\",\" space") + " space \"]\"");
            }
            case Kind.String:
            {
                if (schema.TryGetProperty("pattern", out var pattern))
                {
                    if (pattern.ValueKind != JsonValueKind.String) throw Fail(path, "pattern must be a string");
                    return VisitPattern(pattern.GetString()!, ruleName, path);
                }
                var format = FormatOf(schema, path);
                if (format == "uuid") return VisitPrimitive(ruleName, "uuid");
                if (format is not null)
                {
                    var prim = format + "-string";
                    return AddRule(ruleName, AddPrimitive(prim, StringFormatRules[prim]));
                }
                int minLength = Count(schema, "minLength", path, 0);
                int maxLength = Count(schema, "maxLength", path, -1);
                if (minLength > 0 || maxLength >= 0)
                {
                    var charRule = AddPrimitive("char", PrimitiveRules["char"]);
                    return AddRule(ruleName, "\"\\\"\" " + BuildRepetition(charRule, minLength, maxLength < 0 ? int.MaxValue : maxLength) + " \"\\\"\"");
                }
                return VisitPrimitive(ruleName, "string");
            }
            case Kind.Integer:
            {
                long min = long.MinValue, max = long.MaxValue;
                if (Has(schema, "minimum")) min = Bound(schema, "minimum", path, roundUp: true);
                else if (Has(schema, "exclusiveMinimum")) min = Bound(schema, "exclusiveMinimum", path, roundUp: false) + 1;
                if (Has(schema, "maximum")) max = Bound(schema, "maximum", path, roundUp: false);
                else if (Has(schema, "exclusiveMaximum")) max = Bound(schema, "exclusiveMaximum", path, roundUp: true) - 1;
                if (min == long.MinValue && max == long.MaxValue) return VisitPrimitive(ruleName, "integer");
                if (min > max) throw Fail(path, $"minimum {min} is above maximum {max}");
                var sb = new StringBuilder("(");
                BuildMinMaxInt(min, max, sb);
                sb.Append(')');
                return AddRule(ruleName, sb.ToString());
            }
            case Kind.Number:
                foreach (var k in new[] { "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum" })
                    if (Has(schema, k)) throw Fail(path, $"unsupported keyword '{k}' on type number (llama.cpp's converter bounds integers only)");
                return VisitPrimitive(ruleName, "number");
            case Kind.Boolean: return VisitPrimitive(ruleName, "boolean");
            case Kind.Null: return VisitPrimitive(ruleName, "null");
            default: return AddRule(ruleName, AddPrimitive("value", PrimitiveRules["value"]));
        }
    }

    static long Bound(JsonElement s, string key, string path, bool roundUp)
    {
        var v = s.GetProperty(key);
        if (v.ValueKind != JsonValueKind.Number) throw Fail(path, key + " must be a number");
        if (v.TryGetInt64(out var n)) return n;
        var d = v.GetDouble();
        d = roundUp ? Math.Ceiling(d) : Math.Floor(d);
        if (d >= 9.2e18 || d <= -9.2e18) throw Fail(path, $"{key} is out of the 64-bit integer range");
        return (long)d;
    }

    /// <summary>The alternatives of an anyOf/oneOf, a type array, or nullable: true.</summary>
    List<(JsonElement Schema, string Path, string? TypeName, bool StripNullable)> Alternatives(JsonElement schema, string path)
    {
        var result = new List<(JsonElement, string, string?, bool)>();
        if (Has(schema, "oneOf") || Has(schema, "anyOf"))
        {
            var key = Has(schema, "oneOf") ? "oneOf" : "anyOf";
            var alts = schema.GetProperty(key);
            if (alts.ValueKind != JsonValueKind.Array) throw Fail(path + "/" + key, "must be an array of schemas");
            if (alts.GetArrayLength() == 0) throw Fail(path + "/" + key, "must not be empty");
            int i = 0;
            foreach (var a in alts.EnumerateArray()) result.Add((a, $"{path}/{key}/{i++}", null, false));
            return result;
        }
        if (schema.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.Array)
        {
            if (type.GetArrayLength() == 0) throw Fail(path, "type must not be empty");
            int i = 0;
            foreach (var t in type.EnumerateArray())
            {
                if (t.ValueKind != JsonValueKind.String) throw Fail(path, "type must be a string or an array of strings");
                result.Add((schema, $"{path}/type/{i++}", t.GetString(), false));
            }
            return result;
        }
        // nullable: true
        result.Add((schema, path, null, true));
        result.Add((schema, path, "null", true));
        return result;
    }

    string UnionRule(string name, List<(JsonElement Schema, string Path, string? TypeName, bool StripNullable)> alts)
    {
        var rules = new List<string>();
        for (int i = 0; i < alts.Count; i++)
        {
            var (s, p, typeName, strip) = alts[i];
            var altName = name + (name.Length == 0 ? "alternative-" : "-") + i.ToString(CultureInfo.InvariantCulture);
            rules.Add(typeName is null && !strip ? Visit(s, altName, p) : Visit(Rewrite(s, typeName, strip), altName, p));
        }
        return string.Join(" | ", rules);
    }

    /// <summary>A copy of <paramref name="s"/> with "type" replaced (type arrays) and/or "nullable" removed.</summary>
    static JsonElement Rewrite(JsonElement s, string? typeName, bool stripNullable)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            foreach (var p in s.EnumerateObject())
            {
                if (p.NameEquals("type") && typeName is not null) continue;
                if (p.NameEquals("nullable") && stripNullable) continue;
                p.WriteTo(w);
            }
            if (typeName is not null) w.WriteString("type", typeName);
            w.WriteEndObject();
        }
        using var doc = JsonDocument.Parse(buffer.WrittenMemory);
        return doc.RootElement.Clone();
    }

    string VisitRef(string reference, string path)
    {
        var target = ResolveRef(reference, path);
        var hash = reference.IndexOf('#');
        var fragment = hash >= 0 ? reference[(hash + 1)..] : reference;
        var refName = "ref" + InvalidRuleChars.Replace(fragment, "-");
        if (!_rules.ContainsKey(refName) && !_refsBeingResolved.Contains(reference))
        {
            if (_refsBeingResolved.Count >= MaxRefDepth) throw Fail(path, "$ref chain too deep");
            _refsBeingResolved.Add(reference);
            refName = Visit(target, refName, reference);
            _refsBeingResolved.Remove(reference);
        }
        return refName;
    }

    (List<(string Name, JsonElement Schema)> Props, HashSet<string> Required, JsonElement? Additional, bool AdditionalAny) ObjectParts(JsonElement schema, string path)
    {
        var required = new HashSet<string>(StringComparer.Ordinal);
        if (schema.TryGetProperty("required", out var req) && req.ValueKind == JsonValueKind.Array)
            foreach (var n in req.EnumerateArray())
                if (n.ValueKind == JsonValueKind.String) required.Add(n.GetString()!);
        var props = new List<(string, JsonElement)>();
        if (schema.TryGetProperty("properties", out var properties))
        {
            if (properties.ValueKind != JsonValueKind.Object) throw Fail(path, "properties must be an object");
            foreach (var p in properties.EnumerateObject()) props.Add((p.Name, p.Value));
        }
        JsonElement? additional = null;
        bool additionalAny = false;
        if (schema.TryGetProperty("additionalProperties", out var ap))
        {
            if (ap.ValueKind == JsonValueKind.True) additionalAny = true;
            else if (ap.ValueKind == JsonValueKind.Object)
            {
                if (Classify(ap, path + "/additionalProperties", out _) == Kind.Any) additionalAny = true;
                else additional = ap;
            }
            else if (ap.ValueKind != JsonValueKind.False) throw Fail(path, "additionalProperties must be a boolean or a schema");
        }
        else if (!Has(schema, "properties")) additionalAny = true;
        return (props, required, additional, additionalAny);
    }

    string BuildObjectRule(List<(string Name, JsonElement Schema)> properties, HashSet<string> required, string name,
        JsonElement? additional, bool additionalAny, string path)
    {
        var requiredProps = new List<string>();
        var optionalProps = new List<string>();
        var kvRuleNames = new Dictionary<string, string>(StringComparer.Ordinal);
        var propNames = new List<string>();
        var prefix = name + (name.Length == 0 ? "" : "-");
        foreach (var (propName, propSchema) in properties)
        {
            var propRuleName = Visit(propSchema, prefix + propName, path + "/properties/" + propName);
            kvRuleNames[propName] = AddRule(prefix + propName + "-kv", FormatLiteral(JsonString(propName)) + " space \":\" space " + propRuleName);
            if (required.Contains(propName)) requiredProps.Add(propName);
            else optionalProps.Add(propName);
            propNames.Add(propName);
        }
        if (additional is not null || additionalAny)
        {
            var sub = prefix + "additional";
            var valueRule = additional is { } a ? Visit(a, sub + "-value", path + "/additionalProperties") : AddPrimitive("value", PrimitiveRules["value"]);
            var keyRule = propNames.Count == 0 ? AddPrimitive("string", PrimitiveRules["string"]) : AddRule(sub + "-k", NotStrings(propNames));
            kvRuleNames["*"] = AddRule(sub + "-kv", keyRule + " \":\" space " + valueRule);
            optionalProps.Add("*");
        }
        if (requiredProps.Count == 0 && optionalProps.Count == 0) return "\"{\" space \"}\"";

        var rule = new StringBuilder("\"{\" space ");
        for (int i = 0; i < requiredProps.Count; i++)
        {
            if (i > 0) rule.Append(" \",\" space ");
            rule.Append(kvRuleNames[requiredProps[i]]);
        }
        if (optionalProps.Count > 0)
        {
            rule.Append(" (");
            if (requiredProps.Count > 0) rule.Append(" \",\" space ( ");
            string RecursiveRefs(List<string> ks, bool firstIsOptional)
            {
                if (ks.Count == 0) return "";
                var k = ks[0];
                var kv = kvRuleNames[k];
                var commaRef = "( \",\" space " + kv + " )";
                string res = firstIsOptional ? commaRef + (k == "*" ? "*" : "?") : kv + (k == "*" ? " " + commaRef + "*" : "");
                if (ks.Count > 1) res += " " + AddRule(prefix + k + "-rest", RecursiveRefs(ks.GetRange(1, ks.Count - 1), true));
                return res;
            }
            for (int i = 0; i < optionalProps.Count; i++)
            {
                if (i > 0) rule.Append(" | ");
                rule.Append(RecursiveRefs(optionalProps.GetRange(i, optionalProps.Count - i), false));
            }
            if (requiredProps.Count > 0) rule.Append(" )");
            rule.Append(" )?");
        }
        rule.Append(" space \"}\"");
        return rule.ToString();
    }

    /// <summary>A JSON string that is none of <paramref name="strings"/> (llama.cpp's _not_strings, over a trie of
    /// code points).</summary>
    string NotStrings(List<string> strings)
    {
        var children = new List<SortedDictionary<int, int>> { new() };
        var terminal = new List<bool> { false };
        foreach (var s in strings)
        {
            int node = 0;
            foreach (var rune in s.EnumerateRunes())
            {
                if (!children[node].TryGetValue(rune.Value, out var child))
                {
                    child = children.Count;
                    children.Add(new());
                    terminal.Add(false);
                    children[node][rune.Value] = child;
                }
                node = child;
            }
            terminal[node] = true;
        }
        var charRule = AddPrimitive("char", PrimitiveRules["char"]);
        var o = new StringBuilder("[\"] ( ");
        void VisitNode(int idx)
        {
            var rejects = new StringBuilder();
            bool first = true;
            foreach (var (cpt, child) in children[idx])
            {
                var c = char.ConvertFromUtf32(cpt);
                rejects.Append(c);
                if (first) first = false;
                else o.Append(" | ");
                o.Append('[').Append(c).Append(']');
                if (children[child].Count > 0)
                {
                    o.Append(" (");
                    VisitNode(child);
                    o.Append(')');
                }
                else o.Append(' ').Append(charRule).Append('+');
            }
            if (children[idx].Count > 0) o.Append(" | [^\"").Append(rejects).Append("] ").Append(charRule).Append('*');
        }
        VisitNode(0);
        o.Append(" )");
        if (!terminal[0]) o.Append('?');
        o.Append(" [\"]");
        return o.ToString();
    }

    string VisitAllOf(JsonElement schema, string name, string ruleName, string path)
    {
        var required = new HashSet<string>(StringComparer.Ordinal);
        var properties = new List<(string, JsonElement)>();
        var enumValues = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var all = schema.GetProperty("allOf");
        if (all.ValueKind != JsonValueKind.Array) throw Fail(path + "/allOf", "must be an array of schemas");
        if (all.GetArrayLength() == 0) throw Fail(path + "/allOf", "must not be empty");
        void AddComponent(JsonElement comp, bool isRequired, string p, int depth)
        {
            if (depth > MaxRefDepth) throw Fail(p, "$ref chain too deep");
            var kind = Classify(comp, p, out _);
            if (kind == Kind.Ref)
            {
                var r = comp.GetProperty("$ref").GetString()!;
                AddComponent(ResolveRef(r, p), isRequired, r, depth + 1);
            }
            else if (kind == Kind.Object)
            {
                var (props, _, _, _) = ObjectParts(comp, p);
                foreach (var prop in props)
                {
                    properties.Add(prop);
                    if (isRequired) required.Add(prop.Name);
                }
            }
            else if (kind == Kind.Enum)
                foreach (var v in comp.GetProperty("enum").EnumerateArray())
                {
                    var c = ConstantRule(v);
                    enumValues[c] = enumValues.GetValueOrDefault(c) + 1;
                }
            else if (kind != Kind.Any)
                throw Fail(p, "allOf supports only objects, $refs to objects, enums and anyOf of those");
        }
        int i = 0;
        foreach (var child in all.EnumerateArray())
        {
            var p = $"{path}/allOf/{i++}";
            if (Classify(child, p, out _) == Kind.AnyOf && (Has(child, "anyOf") || Has(child, "oneOf")))
            {
                var key = Has(child, "oneOf") ? "oneOf" : "anyOf";
                int j = 0;
                foreach (var alt in child.GetProperty(key).EnumerateArray()) AddComponent(alt, false, $"{p}/{key}/{j++}", 0);
            }
            else AddComponent(child, true, p, 0);
        }
        if (enumValues.Count > 0)
        {
            var inter = enumValues.Where(e => e.Value == all.GetArrayLength()).Select(e => e.Key).ToList();
            if (inter.Count > 0) return AddRule(ruleName, "(" + string.Join(" | ", inter) + ")");
        }
        return AddRule(ruleName, BuildObjectRule(properties, required, name, null, false, path));
    }

    string VisitPrimitive(string ruleName, string type) => AddPrimitive(ruleName == "root" ? "root" : type, PrimitiveRules[type]);

    // ---- literals ----

    static string FormatLiteral(string literal)
    {
        var sb = new StringBuilder("\"");
        foreach (var c in literal)
        {
            switch (c)
            {
                case '\r': sb.Append("\\r"); break;
                case '\n': sb.Append("\\n"); break;
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                default: sb.Append(c); break;
            }
        }
        return sb.Append('"').ToString();
    }

    static string ConstantRule(JsonElement value) => FormatLiteral(Dump(value));

    /// <summary>Compact JSON as nlohmann::json::dump() writes it (object keys sorted, non-ASCII kept).</summary>
    static string Dump(JsonElement v)
    {
        var sb = new StringBuilder();
        void Write(JsonElement e)
        {
            switch (e.ValueKind)
            {
                case JsonValueKind.String: sb.Append(JsonString(e.GetString()!)); break;
                case JsonValueKind.Number:
                    if (e.TryGetInt64(out var l)) sb.Append(l.ToString(CultureInfo.InvariantCulture));
                    else sb.Append(e.GetDouble().ToString("R", CultureInfo.InvariantCulture));
                    break;
                case JsonValueKind.True: sb.Append("true"); break;
                case JsonValueKind.False: sb.Append("false"); break;
                case JsonValueKind.Null: sb.Append("null"); break;
                case JsonValueKind.Array:
                {
                    sb.Append('[');
                    bool first = true;
                    foreach (var x in e.EnumerateArray()) { if (!first) sb.Append(','); first = false; Write(x); }
                    sb.Append(']');
                    break;
                }
                default:
                {
                    sb.Append('{');
                    bool first = true;
                    foreach (var p in e.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal))
                    {
                        if (!first) sb.Append(',');
                        first = false;
                        sb.Append(JsonString(p.Name)).Append(':');
                        Write(p.Value);
                    }
                    sb.Append('}');
                    break;
                }
            }
        }
        Write(v);
        return sb.ToString();
    }

    static string JsonString(string s)
    {
        var sb = new StringBuilder("\"");
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append('"').ToString();
    }

    // ---- repetition and integer ranges ----

    static string BuildRepetition(string itemRule, int minItems, int maxItems, string separatorRule = "")
    {
        bool hasMax = maxItems != int.MaxValue;
        if (maxItems == 0) return "";
        if (minItems == 0 && maxItems == 1) return itemRule + "?";
        if (separatorRule.Length == 0)
        {
            if (minItems == 1 && !hasMax) return itemRule + "+";
            if (minItems == 0 && !hasMax) return itemRule + "*";
            return itemRule + "{" + minItems.ToString(CultureInfo.InvariantCulture) + "," + (hasMax ? maxItems.ToString(CultureInfo.InvariantCulture) : "") + "}";
        }
        var result = itemRule + " " + BuildRepetition("(" + separatorRule + " " + itemRule + ")", minItems == 0 ? 0 : minItems - 1, hasMax ? maxItems - 1 : maxItems);
        if (minItems == 0) result = "(" + result + ")?";
        return result;
    }

    static string Repeat(char c, int n) => new(c, n);

    static void BuildMinMaxInt(long minValue, long maxValue, StringBuilder o, int decimalsLeft = 16, bool topLevel = true)
    {
        bool hasMin = minValue != long.MinValue;
        bool hasMax = maxValue != long.MaxValue;

        void DigitRange(char from, char to)
        {
            o.Append('[');
            if (from == to) o.Append(from);
            else o.Append(from).Append('-').Append(to);
            o.Append(']');
        }
        void MoreDigits(int minDigits, int maxDigits)
        {
            o.Append("[0-9]");
            if (minDigits == maxDigits && minDigits == 1) return;
            o.Append('{').Append(minDigits);
            if (maxDigits != minDigits)
            {
                o.Append(',');
                if (maxDigits != int.MaxValue) o.Append(maxDigits);
            }
            o.Append('}');
        }
        void UniformRange(string from, string to)
        {
            int i = 0;
            while (i < from.Length && i < to.Length && from[i] == to[i]) i++;
            if (i > 0) o.Append('"').Append(from, 0, i).Append('"');
            if (i < from.Length && i < to.Length)
            {
                if (i > 0) o.Append(' ');
                int subLen = from.Length - i - 1;
                if (subLen > 0)
                {
                    var fromSub = from[(i + 1)..];
                    var toSub = to[(i + 1)..];
                    var subZeros = Repeat('0', subLen);
                    var subNines = Repeat('9', subLen);
                    bool toReached = false;
                    o.Append('(');
                    if (fromSub == subZeros)
                    {
                        DigitRange(from[i], (char)(to[i] - 1));
                        o.Append(' ');
                        MoreDigits(subLen, subLen);
                    }
                    else
                    {
                        o.Append('[').Append(from[i]).Append("] ");
                        o.Append('(');
                        UniformRange(fromSub, subNines);
                        o.Append(')');
                        if (from[i] < to[i] - 1)
                        {
                            o.Append(" | ");
                            if (toSub == subNines)
                            {
                                DigitRange((char)(from[i] + 1), to[i]);
                                toReached = true;
                            }
                            else DigitRange((char)(from[i] + 1), (char)(to[i] - 1));
                            o.Append(' ');
                            MoreDigits(subLen, subLen);
                        }
                    }
                    if (!toReached)
                    {
                        o.Append(" | ");
                        DigitRange(to[i], to[i]);
                        o.Append(' ');
                        UniformRange(subZeros, toSub);
                    }
                    o.Append(')');
                }
                else o.Append('[').Append(from[i]).Append('-').Append(to[i]).Append(']');
            }
        }

        if (hasMin && hasMax)
        {
            if (minValue < 0 && maxValue < 0)
            {
                o.Append("\"-\" (");
                BuildMinMaxInt(-maxValue, -minValue, o, decimalsLeft, true);
                o.Append(')');
                return;
            }
            if (minValue < 0)
            {
                o.Append("\"-\" (");
                BuildMinMaxInt(0, -minValue, o, decimalsLeft, true);
                o.Append(") | ");
                minValue = 0;
            }
            var minS = minValue.ToString(CultureInfo.InvariantCulture);
            var maxS = maxValue.ToString(CultureInfo.InvariantCulture);
            for (int digits = minS.Length; digits < maxS.Length; digits++)
            {
                UniformRange(minS, Repeat('9', digits));
                minS = "1" + Repeat('0', digits);
                o.Append(" | ");
            }
            UniformRange(minS, maxS);
            return;
        }

        int lessDecimals = Math.Max(decimalsLeft - 1, 1);
        if (hasMin)
        {
            if (minValue < 0)
            {
                o.Append("\"-\" (");
                BuildMinMaxInt(long.MinValue, -minValue, o, decimalsLeft, false);
                o.Append(") | [0] | [1-9] ");
                MoreDigits(0, decimalsLeft - 1);
            }
            else if (minValue == 0)
            {
                if (topLevel)
                {
                    o.Append("[0] | [1-9] ");
                    MoreDigits(0, lessDecimals);
                }
                else MoreDigits(1, decimalsLeft);
            }
            else if (minValue <= 9)
            {
                char c = (char)('0' + minValue);
                char rangeStart = topLevel ? '1' : '0';
                if (c > rangeStart)
                {
                    DigitRange(rangeStart, (char)(c - 1));
                    o.Append(' ');
                    MoreDigits(1, lessDecimals);
                    o.Append(" | ");
                }
                DigitRange(c, '9');
                o.Append(' ');
                MoreDigits(0, lessDecimals);
            }
            else
            {
                var minS = minValue.ToString(CultureInfo.InvariantCulture);
                int len = minS.Length;
                char c = minS[0];
                if (c > '1')
                {
                    DigitRange(topLevel ? '1' : '0', (char)(c - 1));
                    o.Append(' ');
                    MoreDigits(len, lessDecimals);
                    o.Append(" | ");
                }
                DigitRange(c, c);
                o.Append(" (");
                BuildMinMaxInt(long.Parse(minS[1..], CultureInfo.InvariantCulture), long.MaxValue, o, lessDecimals, false);
                o.Append(')');
                if (c < '9')
                {
                    o.Append(" | ");
                    DigitRange((char)(c + 1), '9');
                    o.Append(' ');
                    MoreDigits(len - 1, lessDecimals);
                }
            }
            return;
        }
        if (hasMax)
        {
            if (maxValue >= 0)
            {
                if (topLevel)
                {
                    o.Append("\"-\" [1-9] ");
                    MoreDigits(0, lessDecimals);
                    o.Append(" | ");
                }
                BuildMinMaxInt(0, maxValue, o, decimalsLeft, true);
            }
            else
            {
                o.Append("\"-\" (");
                BuildMinMaxInt(-maxValue, long.MaxValue, o, decimalsLeft, false);
                o.Append(')');
            }
            return;
        }
        throw new GrammarException("At least one of min_value or max_value must be set");
    }

    // ---- patterns (the regex subset llama.cpp translates) ----

    static readonly HashSet<char> NonLiteralSet = ['|', '.', '(', ')', '[', ']', '{', '}', '*', '+', '?', '^', '$'];
    static readonly HashSet<char> EscapedInRegexpsButNotInLiterals = ['^', '$', '.', '[', ']', '(', ')', '|', '{', '}', '*', '+', '?'];

    static int GbnfEscapeLength(string p, int pos)
    {
        if (pos + 1 >= p.Length || p[pos] != '\\') return 0;
        int nHex;
        switch (p[pos + 1])
        {
            case 'x': nHex = 2; break;
            case 'u': nHex = 4; break;
            case 'U': nHex = 8; break;
            case 't' or 'r' or 'n' or '\\' or '"' or '[' or ']' or '-': return 2;
            default: return 0;
        }
        if (pos + 2 + nHex > p.Length) return 0;
        for (int i = pos + 2; i < pos + 2 + nHex; i++)
            if (!Uri.IsHexDigit(p[i])) return 0;
        return 2 + nHex;
    }

    string VisitPattern(string pattern, string name, string path)
    {
        string Unsupported(string why) => throw Fail(path, $"unsupported keyword 'pattern' value {pattern}: {why}");
        if (pattern.Length < 2 || pattern[0] != '^' || pattern[^1] != '$') Unsupported("not anchored with '^' and '$'");
        var sub = pattern[1..^1];
        var subRuleIds = new Dictionary<string, string>(StringComparer.Ordinal);
        int i = 0, length = sub.Length, parenDepth = 0;

        static string ToRule((string S, bool Literal) ls) => ls.Literal ? "\"" + ls.S + "\"" : ls.S;

        (string, bool) Transform()
        {
            var seq = new List<(string S, bool Literal)>();
            string GetDot() => AddRule("dot", "[^\\x0A\\x0D]");
            (string, bool) JoinSeq()
            {
                var ret = new List<(string, bool)>();
                var literal = new StringBuilder();
                void Flush()
                {
                    if (literal.Length == 0) return;
                    ret.Add((literal.ToString(), true));
                    literal.Clear();
                }
                foreach (var item in seq)
                {
                    if (item.Literal) literal.Append(item.S);
                    else { Flush(); ret.Add(item); }
                }
                Flush();
                return (string.Join(" ", ret.Select(ToRule)), false);
            }

            while (i < length)
            {
                char c = sub[i];
                if (c == '.') { seq.Add((GetDot(), false)); i++; }
                else if (c == '(')
                {
                    i++;
                    if (i < length && sub[i] == '?')
                    {
                        if (i + 1 < length && sub[i + 1] == ':') i += 2;
                        else Unsupported("unsupported group syntax");
                    }
                    if (++parenDepth > MaxPatternDepth) Unsupported("pattern nesting too deep");
                    seq.Add(("(" + ToRule(Transform()) + ")", false));
                }
                else if (c == ')')
                {
                    i++;
                    if (parenDepth == 0) throw Fail(path, $"invalid pattern {pattern}: unbalanced parentheses");
                    parenDepth--;
                    return JoinSeq();
                }
                else if (c is '^' or '$') Unsupported("anchor inside the pattern");
                else if (c == '[')
                {
                    var sq = new StringBuilder("[");
                    i++;
                    while (i < length && sub[i] != ']')
                    {
                        if (sub[i] == '\\')
                        {
                            int el = GbnfEscapeLength(sub, i);
                            if (el == 0) Unsupported("unsupported escape in character class: " + sub.Substring(i, Math.Min(2, length - i)));
                            sq.Append(sub, i, el);
                            i += el;
                        }
                        else sq.Append(sub[i++]);
                    }
                    if (i >= length) throw Fail(path, $"invalid pattern {pattern}: unterminated character class");
                    sq.Append(']');
                    i++;
                    seq.Add((sq.ToString(), false));
                }
                else if (c == '|') { seq.Add(("|", false)); i++; }
                else if (c is '*' or '+' or '?')
                {
                    if (seq.Count == 0) throw Fail(path, $"invalid pattern {pattern}: nothing to repeat");
                    seq[^1] = (ToRule(seq[^1]) + c, false);
                    i++;
                }
                else if (c == '{')
                {
                    var curly = new StringBuilder("{");
                    i++;
                    while (i < length && sub[i] != '}') curly.Append(sub[i++]);
                    if (i >= length) Unsupported("unterminated curly brackets");
                    i++;
                    var nums = curly.ToString(1, curly.Length - 1).Split(',');
                    int minTimes = 0, maxTimes = int.MaxValue;
                    if (nums.Length is not (1 or 2)) Unsupported("wrong number of values in curly brackets");
                    static bool ParseInt(string s, out int v) => int.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out v);
                    if (nums.Length == 1)
                    {
                        if (!ParseInt(nums[0], out minTimes)) Unsupported("invalid number in curly brackets");
                        maxTimes = minTimes;
                    }
                    else
                    {
                        if (nums[0].Length > 0 && !ParseInt(nums[0], out minTimes)) Unsupported("invalid number in curly brackets");
                        if (nums[1].Length > 0 && !ParseInt(nums[1], out maxTimes)) Unsupported("invalid number in curly brackets");
                    }
                    if (seq.Count == 0) throw Fail(path, $"invalid pattern {pattern}: nothing to repeat");
                    var (s, isLiteral) = seq[^1];
                    if (!isLiteral)
                    {
                        if (!subRuleIds.TryGetValue(s, out var id))
                        {
                            id = AddRule(name + "-" + (subRuleIds.Count + 1).ToString(CultureInfo.InvariantCulture), s);
                            subRuleIds[s] = id;
                        }
                        s = id;
                    }
                    seq[^1] = (BuildRepetition(isLiteral ? "\"" + s + "\"" : s, minTimes, maxTimes), false);
                }
                else
                {
                    var literal = new StringBuilder();
                    bool IsNonLiteral(char x) => NonLiteralSet.Contains(x);
                    while (i < length)
                    {
                        if (sub[i] == '\\')
                        {
                            if (i == length - 1) throw Fail(path, $"invalid pattern {pattern}: trailing backslash");
                            char next = sub[i + 1];
                            if (EscapedInRegexpsButNotInLiterals.Contains(next))
                            {
                                i++;
                                literal.Append(sub[i]);
                                i++;
                            }
                            else
                            {
                                int el = GbnfEscapeLength(sub, i);
                                if (el == 0) Unsupported("unsupported escape: " + sub.Substring(i, 2));
                                literal.Append(sub, i, el);
                                i += el;
                            }
                        }
                        else if (sub[i] == '"') { literal.Append("\\\""); i++; }
                        else if (!IsNonLiteral(sub[i]) && (i == length - 1 || literal.Length == 0 || sub[i + 1] == '.' || !IsNonLiteral(sub[i + 1])))
                            literal.Append(sub[i++]);
                        else break;
                    }
                    if (literal.Length == 0) Unsupported("unsupported character: " + c);
                    seq.Add((literal.ToString(), true));
                }
            }
            return JoinSeq();
        }

        var rule = ToRule(Transform());
        if (parenDepth != 0) throw Fail(path, $"invalid pattern {pattern}: unbalanced parentheses");
        return AddRule(name, "\"\\\"\" (" + rule + ") \"\\\"\"");
    }
}
