using System.Text;
using System.Text.Json;

namespace Engine.Server;

/// <summary>Typed reads of a JSON request body with errors that name the field: a wrong type or range is a 400 that
/// says which parameter and what was expected, never an exception from deep inside the server.</summary>
internal readonly struct JsonRequest(JsonElement root)
{
    public JsonElement Root { get; } = root;

    /// <summary>Parses a body; anything but a JSON object is a 400.</summary>
    public static async Task<JsonRequest> ReadAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        JsonDocument document;
        try
        {
            document = await JsonDocument.ParseAsync(request.Body, new JsonDocumentOptions { MaxDepth = 64 }, cancellationToken).ConfigureAwait(false);
        }
        catch (JsonException e)
        {
            throw ApiError.BadRequest($"the request body is not valid JSON: {e.Message}");
        }
        catch (DecoderFallbackException)
        {
            throw ApiError.BadRequest("the request body is not valid UTF-8");
        }
        catch (ArgumentException e) when (e.InnerException is DecoderFallbackException || e.Message.Contains("UTF-8", StringComparison.OrdinalIgnoreCase))
        {
            throw ApiError.BadRequest("the request body is not valid UTF-8");
        }
        if (document.RootElement.ValueKind != JsonValueKind.Object)
            throw ApiError.BadRequest($"the request body must be a JSON object, got {Describe(document.RootElement.ValueKind)}");
        return new JsonRequest(document.RootElement.Clone());
    }

    public bool Has(string name) => Root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null;

    public JsonElement? Get(string name) => Root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public string RequiredString(string name)
    {
        var value = String(name) ?? throw ApiError.BadRequest($"'{name}' is required", name);
        return value;
    }

    public string? String(string name)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.String) throw ApiError.BadRequest($"'{name}' must be a string, got {Describe(v.ValueKind)}", name);
        return v.GetString();
    }

    public bool? Bool(string name)
    {
        if (Get(name) is not { } v) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw ApiError.BadRequest($"'{name}' must be true or false, got {Describe(v.ValueKind)}", name),
        };
    }

    public int? Int(string name, int min, int max)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double d) || d != Math.Floor(d))
            throw ApiError.BadRequest($"'{name}' must be an integer, got {Describe(v)}", name);
        if (d < min || d > max) throw ApiError.BadRequest($"'{name}' must be in [{min}, {max}], got {d}", name);
        return (int)d;
    }

    public long? Long(string name, long min, long max)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double d) || d != Math.Floor(d))
            throw ApiError.BadRequest($"'{name}' must be an integer, got {Describe(v)}", name);
        if (d < min || d > max) throw ApiError.BadRequest($"'{name}' must be in [{min}, {max}], got {d}", name);
        return (long)d;
    }

    public float? Float(string name, float min, float max)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double d) || !double.IsFinite(d))
            throw ApiError.BadRequest($"'{name}' must be a number, got {Describe(v)}", name);
        if (d < min || d > max) throw ApiError.BadRequest($"'{name}' must be in [{min}, {max}], got {d}", name);
        return (float)d;
    }

    /// <summary>A string or an array of strings (OpenAI's stop, Ollama's stop and embed input).</summary>
    public IReadOnlyList<string>? Strings(string name, int maxCount)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind == JsonValueKind.String) return [v.GetString()!];
        if (v.ValueKind != JsonValueKind.Array) throw ApiError.BadRequest($"'{name}' must be a string or an array of strings, got {Describe(v.ValueKind)}", name);
        if (v.GetArrayLength() > maxCount) throw ApiError.BadRequest($"'{name}' holds {v.GetArrayLength()} entries, at most {maxCount} are allowed", name);
        var list = new List<string>();
        foreach (var item in v.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String) throw ApiError.BadRequest($"'{name}' must hold strings, got {Describe(item.ValueKind)}", name);
            list.Add(item.GetString()!);
        }
        return list;
    }

    /// <summary>A nested object (Ollama's options, OpenAI's stream_options), or null when absent.</summary>
    public JsonRequest? Object(string name)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Object) throw ApiError.BadRequest($"'{name}' must be an object, got {Describe(v.ValueKind)}", name);
        return new JsonRequest(v);
    }

    public static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };

    static string Describe(JsonElement v) => v.ValueKind == JsonValueKind.Number ? v.GetRawText() : Describe(v.ValueKind);
}
