using System.Text.Json;

namespace Engine.Chat.Tools;

/// <summary>One call the model wrote: the function's name and its arguments as JSON object text.</summary>
internal sealed record ParsedToolCall(string Name, string Arguments, string? Id = null);

/// <summary>A finished reply split into the text before the calls and the calls themselves.</summary>
internal sealed record ParsedReply(string Content, IReadOnlyList<ParsedToolCall> Calls);

/// <summary>
/// How one model family writes tool calls in its reply. Each family's chat template tells the model the format
/// (the template renders the tools), and this class reads the reply back: where calls begin, so a stream can hold
/// that text back instead of showing it as the answer, and how to split the finished reply into content and calls.
/// A reply whose calls do not parse is returned as content, as llama.cpp's server does, so nothing the model wrote is lost.
/// </summary>
internal abstract class ToolCallFormat
{
    /// <summary>Short name for logs ("hermes", "llama3-json", "mistral", "deepseek").</summary>
    public abstract string Name { get; }

    /// <summary>Texts that open the calls. The reply's text from the first of them on is held back while streaming.</summary>
    public abstract IReadOnlyList<string> StartMarkers { get; }

    /// <summary>True when a reply that begins with <paramref name="trimmedStart"/> (leading whitespace removed) may be
    /// a bare call without any start marker (Llama 3's JSON calls): the stream then waits for the end of the reply.</summary>
    public virtual bool MayStartBare(string trimmedStart) => false;

    /// <summary>Special tokens the family writes around its calls: they must reach the parser as text, even where the
    /// vocabulary marks them as control tokens that are normally not shown.</summary>
    public virtual IReadOnlyList<string> MarkerTokens => StartMarkers;

    /// <summary>Splits a finished reply; no calls when the reply holds none that parse.</summary>
    public abstract ParsedReply Parse(string reply);

    /// <summary>A GBNF grammar of a reply that is one call of one of <paramref name="tools"/> in this family's format, the
    /// arguments matching the tool's parameter schema (llama.cpp also forces a single call unless parallel calls are
    /// asked for). When the prompt left a think block open, the reasoning and its closing tag come first.</summary>
    /// <exception cref="GrammarException">A parameter schema is invalid or uses an unsupported keyword.</exception>
    public string CallGrammar(IReadOnlyList<ChatTool> tools, bool reasoningOpen)
    {
        var builder = new Engine.Grammar.JsonSchemaToGrammar.Builder();
        var alternatives = new List<string>();
        foreach (var tool in tools)
        {
            var parameters = tool.Parameters ?? AnyObjectSchema;
            var arguments = builder.AddSchema(tool.Name + "-args", parameters, $"tools[{tool.Name}].parameters");
            alternatives.Add(builder.AddRule(tool.Name + "-call", CallRule(tool.Name, arguments)));
        }
        var call = builder.AddRule("tool-call", string.Join(" | ", alternatives));
        var thinking = reasoningOpen ? builder.AddRule("reasoning", $"([^<] | \"<\" [^/])* {Gbnf.Literal(ThinkSplitter.CloseTag)} [\n]*") + " " : "";
        builder.AddRule("root", thinking + call);
        return builder.Build();
    }

    /// <summary>The schema of any JSON object: the arguments of a tool declared without parameters, and a JSON response
    /// format without a schema.</summary>
    internal static readonly JsonElement AnyObjectSchema = JsonSerializer.Deserialize<JsonElement>("""{"type": "object"}""");

    /// <summary>The GBNF of one call of <paramref name="name"/> whose arguments match the rule <paramref name="argumentsRule"/>.</summary>
    protected abstract string CallRule(string name, string argumentsRule);

    /// <summary>A new call id in the form the family's templates accept (Mistral's check for 9 letters and digits).</summary>
    public virtual string NewCallId() => "call_" + RandomAlphanumeric(24);

    /// <summary>Picks the format from the template's text: the markers each family's template writes.</summary>
    public static ToolCallFormat Detect(string? templateText)
    {
        var t = templateText ?? "";
        if (t.Contains(DeepSeekToolCalls.CallsBegin, StringComparison.Ordinal)) return new DeepSeekToolCalls(fencedArguments: t.Contains("```json", StringComparison.Ordinal));
        if (t.Contains(MistralToolCalls.Marker, StringComparison.Ordinal)) return new MistralToolCalls(namesBeforeArgs: t.Contains("[ARGS]", StringComparison.Ordinal));
        if (t.Contains(HermesToolCalls.Open, StringComparison.Ordinal)) return new HermesToolCalls();
        if (t.Contains("<|start_header_id|>", StringComparison.Ordinal)) return new Llama3ToolCalls();
        // The most widely trained format (Hermes, Qwen, and most fine-tunes of them).
        return new HermesToolCalls();
    }

    internal static string RandomAlphanumeric(int length)
    {
        const string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        return string.Create(length, 0, (span, _) =>
        {
            for (int i = 0; i < span.Length; i++) span[i] = alphabet[System.Security.Cryptography.RandomNumberGenerator.GetInt32(alphabet.Length)];
        });
    }

    /// <summary>Reads one JSON value at the start of <paramref name="text"/> (after whitespace); its length in
    /// characters, or -1 when the text does not start with a complete JSON value.</summary>
    internal static int JsonValueLength(string text, int start, out JsonElement value)
    {
        value = default;
        int i = start;
        while (i < text.Length && char.IsWhiteSpace(text[i])) i++;
        if (i >= text.Length) return -1;
        var bytes = System.Text.Encoding.UTF8.GetBytes(text[i..]);
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow });
        try
        {
            if (!JsonDocument.TryParseValue(ref reader, out var document)) return -1;
            using (document) value = document.RootElement.Clone();
            int consumedChars = System.Text.Encoding.UTF8.GetCharCount(bytes, 0, (int)reader.BytesConsumed);
            return i - start + consumedChars;
        }
        catch (JsonException) { return -1; }
    }

    /// <summary>Arguments as JSON object text: an object is written compactly; a string holding an object (some models
    /// write the arguments as a string) is unwrapped; anything else is not a call.</summary>
    internal static string? ArgumentsText(JsonElement arguments) => arguments.ValueKind switch
    {
        JsonValueKind.Object => Compact(arguments),
        JsonValueKind.String when TryObject(arguments.GetString()!, out var inner) => Compact(inner),
        _ => null,
    };

    /// <summary>Compact JSON with non-ASCII text kept as it is (as llama.cpp writes arguments back).</summary>
    internal static string Compact(JsonElement value) => JsonSerializer.Serialize(value, CompactOptions);

    static readonly JsonSerializerOptions CompactOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    static bool TryObject(string text, out JsonElement value)
    {
        int length = JsonValueLength(text, 0, out value);
        return length >= 0 && value.ValueKind == JsonValueKind.Object && text[length..].Trim().Length == 0;
    }

    /// <summary>A call from an object such as {"name": ..., "arguments": {...}} with the argument field's name given.</summary>
    internal static ParsedToolCall? CallFromObject(JsonElement call, params string[] argumentFields)
    {
        if (call.ValueKind != JsonValueKind.Object) return null;
        if (!call.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String || name.GetString() is not { Length: > 0 } n) return null;
        foreach (var field in argumentFields)
            if (call.TryGetProperty(field, out var arguments))
                return ArgumentsText(arguments) is { } text ? new ParsedToolCall(n, text, Id(call)) : null;
        return new ParsedToolCall(n, "{}", Id(call)); // a function without parameters may be called without arguments
    }

    static string? Id(JsonElement call) => call.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null;
}

/// <summary>GBNF text pieces.</summary>
internal static class Gbnf
{
    /// <summary>A GBNF string literal of <paramref name="text"/>: quotes, backslashes and control characters escaped, everything
    /// else as it is (the grammar reads UTF-8 code points).</summary>
    public static string Literal(string text)
    {
        var sb = new System.Text.StringBuilder(text.Length + 2).Append('"');
        foreach (var c in text)
            sb.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                < ' ' => $"\\x{(int)c:X2}",
                _ => c.ToString(),
            });
        return sb.Append('"').ToString();
    }
}

/// <summary>Hermes 2 Pro / Qwen2.5 / Qwen3: <c>&lt;tool_call&gt;\n{"name": ..., "arguments": {...}}\n&lt;/tool_call&gt;</c>, one
/// block per call.</summary>
internal sealed class HermesToolCalls : ToolCallFormat
{
    public const string Open = "<tool_call>";
    public const string Close = "</tool_call>";

    public override string Name => "hermes";
    public override IReadOnlyList<string> StartMarkers { get; } = [Open];
    protected override string CallRule(string name, string argumentsRule) =>
        $"{Gbnf.Literal(Open + "\n{\"name\": " + JsonSerializer.Serialize(name) + ", \"arguments\": ")} {argumentsRule} {Gbnf.Literal("}\n" + Close)}";
    public override IReadOnlyList<string> MarkerTokens { get; } = [Open, Close];

    public override ParsedReply Parse(string reply)
    {
        int first = reply.IndexOf(Open, StringComparison.Ordinal);
        if (first < 0) return new ParsedReply(reply, []);
        var calls = new List<ParsedToolCall>();
        int at = first;
        while (at < reply.Length)
        {
            int open = reply.IndexOf(Open, at, StringComparison.Ordinal);
            if (open < 0) { if (reply[at..].Trim().Length > 0) return new ParsedReply(reply, []); break; }
            if (reply[at..open].Trim().Length > 0) return new ParsedReply(reply, []); // text between calls: not a call list
            int body = open + Open.Length;
            int length = JsonValueLength(reply, body, out var json);
            if (length < 0 || CallFromObject(json, "arguments", "parameters") is not { } call) return new ParsedReply(reply, []);
            calls.Add(call);
            at = body + length;
            while (at < reply.Length && char.IsWhiteSpace(reply[at])) at++;
            // The closing tag may be missing when the reply was cut off right after the JSON.
            if (string.CompareOrdinal(reply, at, Close, 0, Close.Length) == 0) at += Close.Length;
        }
        return new ParsedReply(reply[..first].TrimEnd(), calls);
    }
}

/// <summary>Llama 3.1-3.3: a reply that is only <c>{"name": ..., "parameters": {...}}</c> (optionally after
/// <c>&lt;|python_tag|&gt;</c>, several separated by ';'), or a built-in tool call <c>&lt;|python_tag|&gt;name.call(key="value")</c>.</summary>
internal sealed class Llama3ToolCalls : ToolCallFormat
{
    public const string PythonTag = "<|python_tag|>";

    public override string Name => "llama3-json";
    public override IReadOnlyList<string> StartMarkers { get; } = [PythonTag];
    protected override string CallRule(string name, string argumentsRule) =>
        $"{Gbnf.Literal("{\"name\": " + JsonSerializer.Serialize(name) + ", \"parameters\": ")} {argumentsRule} {Gbnf.Literal("}")}";
    public override bool MayStartBare(string trimmedStart) => trimmedStart.StartsWith('{');

    public override ParsedReply Parse(string reply)
    {
        var text = reply.Trim();
        int tag = text.IndexOf(PythonTag, StringComparison.Ordinal);
        string content = "";
        if (tag >= 0)
        {
            content = text[..tag].TrimEnd();
            text = text[(tag + PythonTag.Length)..].Trim();
            if (!text.StartsWith('{')) return BuiltIn(text) is { } builtIn ? new ParsedReply(content, [builtIn]) : new ParsedReply(reply, []);
        }
        else if (!text.StartsWith('{')) return new ParsedReply(reply, []);

        var calls = new List<ParsedToolCall>();
        int at = 0;
        while (at < text.Length)
        {
            int length = JsonValueLength(text, at, out var json);
            if (length < 0 || CallFromObject(json, "parameters", "arguments") is not { } call) return new ParsedReply(reply, []);
            calls.Add(call);
            at += length;
            while (at < text.Length && (char.IsWhiteSpace(text[at]) || text[at] == ';')) at++;
        }
        return new ParsedReply(content, calls);
    }

    /// <summary>brave_search.call(query="...") and the like: keyword arguments of JSON strings or numbers.</summary>
    static ParsedToolCall? BuiltIn(string text)
    {
        var match = System.Text.RegularExpressions.Regex.Match(text, @"^([A-Za-z_][A-Za-z0-9_]*)\.call\((.*)\)\s*$", System.Text.RegularExpressions.RegexOptions.Singleline);
        if (!match.Success) return null;
        var arguments = new System.Text.Json.Nodes.JsonObject();
        var list = match.Groups[2].Value;
        int at = 0;
        while (at < list.Length)
        {
            while (at < list.Length && (char.IsWhiteSpace(list[at]) || list[at] == ',')) at++;
            if (at >= list.Length) break;
            int equals = list.IndexOf('=', at);
            if (equals < 0) return null;
            var key = list[at..equals].Trim();
            if (key.Length == 0 || !key.All(c => char.IsAsciiLetterOrDigit(c) || c == '_')) return null;
            int length = JsonValueLength(list, equals + 1, out var value);
            if (length < 0) return null;
            arguments[key] = System.Text.Json.Nodes.JsonNode.Parse(value.GetRawText());
            at = equals + 1 + length;
        }
        return new ParsedToolCall(match.Groups[1].Value, arguments.ToJsonString());
    }
}

/// <summary>Mistral: <c>[TOOL_CALLS][{"name": ..., "arguments": {...}, "id": ...}]</c> (Mistral 7B v0.3, Nemo) or
/// <c>[TOOL_CALLS]name[ARGS]{...}</c> per call (Mistral Small 3.2, Devstral, Magistral). Call ids are 9 letters and
/// digits, as the templates check.</summary>
internal sealed class MistralToolCalls : ToolCallFormat
{
    public const string Marker = "[TOOL_CALLS]";
    const string ArgsMarker = "[ARGS]";
    const string CallIdMarker = "[CALL_ID]";

    /// <param name="namesBeforeArgs">The template writes <c>[TOOL_CALLS]name[ARGS]{...}</c> (Small 3.2, Devstral) rather
    /// than a JSON list of calls.</param>
    public MistralToolCalls(bool namesBeforeArgs = false) => _namesBeforeArgs = namesBeforeArgs;
    readonly bool _namesBeforeArgs;

    public override string Name => "mistral";
    protected override string CallRule(string name, string argumentsRule) => _namesBeforeArgs
        ? $"{Gbnf.Literal(Marker + name + ArgsMarker)} {argumentsRule}"
        : $"{Gbnf.Literal(Marker + "[{\"name\": " + JsonSerializer.Serialize(name) + ", \"arguments\": ")} {argumentsRule} {Gbnf.Literal("}]")}";
    public override IReadOnlyList<string> StartMarkers { get; } = [Marker];
    public override IReadOnlyList<string> MarkerTokens { get; } = [Marker, ArgsMarker, CallIdMarker];
    public override string NewCallId() => RandomAlphanumeric(9);

    public override ParsedReply Parse(string reply)
    {
        int first = reply.IndexOf(Marker, StringComparison.Ordinal);
        if (first < 0) return new ParsedReply(reply, []);
        var content = reply[..first].TrimEnd();
        var rest = reply[(first + Marker.Length)..].TrimStart();
        var calls = new List<ParsedToolCall>();
        if (rest.StartsWith('['))
        {
            int length = JsonValueLength(rest, 0, out var array);
            if (length < 0 || array.ValueKind != JsonValueKind.Array || rest[length..].Trim().Length > 0) return new ParsedReply(reply, []);
            foreach (var item in array.EnumerateArray())
                if (CallFromObject(item, "arguments", "parameters") is { } call) calls.Add(call);
                else return new ParsedReply(reply, []);
            return calls.Count > 0 ? new ParsedReply(content, calls) : new ParsedReply(reply, []);
        }
        // name[ARGS]{...}, repeated with or without [TOOL_CALLS] between them.
        while (rest.Length > 0)
        {
            int args = rest.IndexOf(ArgsMarker, StringComparison.Ordinal);
            if (args <= 0) return new ParsedReply(reply, []);
            var name = rest[..args];
            string? id = null;
            int idAt = name.IndexOf(CallIdMarker, StringComparison.Ordinal);
            if (idAt >= 0) { id = name[(idAt + CallIdMarker.Length)..].Trim(); name = name[..idAt]; }
            name = name.Trim();
            if (name.Length == 0 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.')) return new ParsedReply(reply, []);
            int body = args + ArgsMarker.Length;
            int length = JsonValueLength(rest, body, out var arguments);
            if (length < 0 || ArgumentsText(arguments) is not { } text) return new ParsedReply(reply, []);
            calls.Add(new ParsedToolCall(name, text, id));
            rest = rest[(body + length)..].TrimStart();
            if (rest.StartsWith(Marker, StringComparison.Ordinal)) rest = rest[Marker.Length..].TrimStart();
        }
        return new ParsedReply(content, calls);
    }
}

/// <summary>DeepSeek R1 (and its distills) and V3: calls between <c>&lt;｜tool▁calls▁begin｜&gt;</c> and
/// <c>&lt;｜tool▁calls▁end｜&gt;</c>, each <c>&lt;｜tool▁call▁begin｜&gt;function&lt;｜tool▁sep｜&gt;NAME\n```json\n{...}\n```&lt;｜tool▁call▁end｜&gt;</c>
/// (R1) or <c>&lt;｜tool▁call▁begin｜&gt;NAME&lt;｜tool▁sep｜&gt;{...}&lt;｜tool▁call▁end｜&gt;</c> (V3.1).</summary>
internal sealed class DeepSeekToolCalls : ToolCallFormat
{
    public const string CallsBegin = "<｜tool▁calls▁begin｜>";
    const string CallsEnd = "<｜tool▁calls▁end｜>";
    const string CallBegin = "<｜tool▁call▁begin｜>";
    const string CallEnd = "<｜tool▁call▁end｜>";
    const string Separator = "<｜tool▁sep｜>";

    /// <param name="fencedArguments">The template writes <c>function&lt;｜tool▁sep｜&gt;NAME</c> and fenced JSON (R1)
    /// rather than <c>NAME&lt;｜tool▁sep｜&gt;{...}</c> (V3.1).</param>
    public DeepSeekToolCalls(bool fencedArguments = true) => _fenced = fencedArguments;
    readonly bool _fenced;

    public override string Name => "deepseek";
    protected override string CallRule(string name, string argumentsRule) => _fenced
        ? $"{Gbnf.Literal(CallsBegin + CallBegin + "function" + Separator + name + "\n```json\n")} {argumentsRule} {Gbnf.Literal("\n```" + CallEnd + CallsEnd)}"
        : $"{Gbnf.Literal(CallsBegin + CallBegin + name + Separator)} {argumentsRule} {Gbnf.Literal(CallEnd + CallsEnd)}";
    // R1 distills sometimes write the single-call marker without the list marker.
    public override IReadOnlyList<string> StartMarkers { get; } = [CallsBegin, CallBegin];
    public override IReadOnlyList<string> MarkerTokens { get; } = [CallsBegin, CallsEnd, CallBegin, CallEnd, Separator];

    public override ParsedReply Parse(string reply)
    {
        int first = reply.IndexOf(CallsBegin, StringComparison.Ordinal);
        int firstCall = reply.IndexOf(CallBegin, StringComparison.Ordinal);
        if (first < 0 || (firstCall >= 0 && firstCall < first)) first = firstCall;
        if (first < 0) return new ParsedReply(reply, []);
        var calls = new List<ParsedToolCall>();
        int at = first;
        if (string.CompareOrdinal(reply, at, CallsBegin, 0, CallsBegin.Length) == 0) at += CallsBegin.Length;
        while (true)
        {
            while (at < reply.Length && char.IsWhiteSpace(reply[at])) at++;
            if (at >= reply.Length || string.CompareOrdinal(reply, at, CallsEnd, 0, CallsEnd.Length) == 0) break;
            if (string.CompareOrdinal(reply, at, CallBegin, 0, CallBegin.Length) != 0) return new ParsedReply(reply, []);
            int end = reply.IndexOf(CallEnd, at, StringComparison.Ordinal);
            var call = ParseCall(reply[(at + CallBegin.Length)..(end < 0 ? reply.Length : end)]);
            if (call is null) return new ParsedReply(reply, []);
            calls.Add(call);
            if (end < 0) break;
            at = end + CallEnd.Length;
        }
        return new ParsedReply(reply[..first].TrimEnd(), calls);
    }

    static ParsedToolCall? ParseCall(string body)
    {
        int separator = body.IndexOf(Separator, StringComparison.Ordinal);
        if (separator < 0) return null;
        var head = body[..separator].Trim();
        var tail = body[(separator + Separator.Length)..];
        string name;
        if (head == "function")
        {
            // R1: the name runs to the end of the line, then a ```json fence holds the arguments.
            int newline = tail.IndexOf('\n');
            if (newline < 0) return null;
            name = tail[..newline].Trim();
            tail = tail[(newline + 1)..].Trim();
            if (tail.StartsWith("```", StringComparison.Ordinal))
            {
                int line = tail.IndexOf('\n');
                if (line < 0) return null;
                tail = tail[(line + 1)..];
                int fence = tail.LastIndexOf("```", StringComparison.Ordinal);
                if (fence >= 0) tail = tail[..fence];
            }
        }
        else name = head;
        if (name.Length == 0) return null;
        int length = JsonValueLength(tail, 0, out var arguments);
        if (length < 0 || tail[length..].Trim().Length > 0 || ArgumentsText(arguments) is not { } text) return null;
        return new ParsedToolCall(name, text);
    }
}
