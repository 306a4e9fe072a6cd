using System.Text.Json;

namespace Engine.Server;

/// <summary>What both API families share: the sampling options of a request, the chat messages, and starting a
/// stream so that what goes wrong before the first token (a prompt that does not fit, a bad option) becomes a 400
/// before any byte of the answer is sent.</summary>
internal static class Generation
{
    /// <summary>Most tokens a request may ask to generate.</summary>
    public const int MaxTokensLimit = 1 << 20;
    /// <summary>Most stop strings a request may give.</summary>
    public const int MaxStops = 16;

    /// <summary>Chat messages as the library takes them: role and text. Content may be a string or OpenAI's array of
    /// text parts; "developer" is the system role of newer OpenAI clients.</summary>
    public static List<ChatTurn> Messages(JsonRequest body)
    {
        if (body.Get("messages") is not { } array) throw ApiError.BadRequest("'messages' is required", "messages");
        if (array.ValueKind != JsonValueKind.Array) throw ApiError.BadRequest($"'messages' must be an array, got {JsonRequest.Describe(array.ValueKind)}", "messages");
        if (array.GetArrayLength() == 0) throw ApiError.BadRequest("'messages' is empty: send at least one message", "messages");
        var turns = new List<ChatTurn>();
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object) throw ApiError.BadRequest($"messages[{i}] must be an object", $"messages[{i}]");
            var message = new JsonRequest(item);
            var role = message.String("role") ?? throw ApiError.BadRequest($"messages[{i}].role is required", $"messages[{i}].role");
            if (role == "developer") role = "system";
            if (role is not ("system" or "user" or "assistant" or "tool"))
                throw ApiError.BadRequest($"messages[{i}].role '{role}' is not one of system, developer, user, assistant, tool", $"messages[{i}].role");
            turns.Add(new ChatTurn(role, Content(message, i))
            {
                ToolCalls = role == "assistant" ? ToolCalls(message, i) : [],
                ToolCallId = role == "tool" ? message.String("tool_call_id") : null,
                ToolName = role == "tool" ? message.String("tool_name") ?? message.String("name") : null,
            });
            i++;
        }
        return turns;
    }

    /// <summary>An assistant message's earlier calls: OpenAI sends the arguments as JSON text, Ollama as an object, and
    /// Ollama sends no ids (they are made up here, so templates that pair calls and results by id still can).</summary>
    static List<ToolCall> ToolCalls(JsonRequest message, int i)
    {
        var calls = new List<ToolCall>();
        if (message.Get("tool_calls") is not { } array) return calls;
        string where = $"messages[{i}].tool_calls";
        if (array.ValueKind != JsonValueKind.Array) throw ApiError.BadRequest($"{where} must be an array", where);
        int k = 0;
        foreach (var item in array.EnumerateArray())
        {
            var call = item.ValueKind == JsonValueKind.Object ? new JsonRequest(item) : throw ApiError.BadRequest($"{where}[{k}] must be an object", where);
            var function = call.Object("function") ?? throw ApiError.BadRequest($"{where}[{k}].function is required", where);
            var name = function.String("name") is { Length: > 0 } n ? n : throw ApiError.BadRequest($"{where}[{k}].function.name is required", where);
            string arguments = function.Get("arguments") switch
            {
                null => "{}",
                { ValueKind: JsonValueKind.String } text => text.GetString()!,
                { ValueKind: JsonValueKind.Object } obj => obj.GetRawText(),
                _ => throw ApiError.BadRequest($"{where}[{k}].function.arguments must be JSON text or an object", where),
            };
            calls.Add(new ToolCall(call.String("id") ?? $"call_{k}", name, arguments));
            k++;
        }
        return calls;
    }

    /// <summary>The schema that asks for any JSON object (OpenAI's json_object, Ollama's format "json").</summary>
    public static readonly JsonElement AnyJsonObject = JsonDocument.Parse("""{"type": "object"}""").RootElement.Clone();

    /// <summary>Most tools a request may offer.</summary>
    public const int MaxTools = 128;

    /// <summary>The functions a request offers: <c>[{"type": "function", "function": {"name", "description", "parameters"}}]</c>
    /// in both API families.</summary>
    public static List<ChatTool> Tools(JsonRequest body)
    {
        var tools = new List<ChatTool>();
        if (body.Get("tools") is not { } array) return tools;
        if (array.ValueKind != JsonValueKind.Array) throw ApiError.BadRequest("'tools' must be an array", "tools");
        if (array.GetArrayLength() > MaxTools) throw ApiError.BadRequest($"'tools' holds more than {MaxTools} tools", "tools");
        int k = 0;
        foreach (var item in array.EnumerateArray())
        {
            var tool = item.ValueKind == JsonValueKind.Object ? new JsonRequest(item) : throw ApiError.BadRequest($"tools[{k}] must be an object", "tools");
            var type = tool.String("type") ?? "function";
            if (type != "function") throw ApiError.BadRequest($"tools[{k}] is a '{type}' tool: this server runs functions only", "tools");
            var function = tool.Object("function") ?? throw ApiError.BadRequest($"tools[{k}].function is required", "tools");
            var parameters = function.Get("parameters");
            if (parameters is { ValueKind: not JsonValueKind.Object }) throw ApiError.BadRequest($"tools[{k}].function.parameters must be a JSON Schema object", "tools");
            tools.Add(new ChatTool(function.RequiredString("name"), function.String("description"), parameters?.Clone()));
            k++;
        }
        return tools;
    }

    static string Content(JsonRequest message, int i)
    {
        if (message.Get("content") is not { } content) return "";
        if (content.ValueKind == JsonValueKind.String) return content.GetString()!;
        if (content.ValueKind != JsonValueKind.Array)
            throw ApiError.BadRequest($"messages[{i}].content must be a string or an array of parts", $"messages[{i}].content");
        var text = new System.Text.StringBuilder();
        foreach (var part in content.EnumerateArray())
        {
            var p = part.ValueKind == JsonValueKind.Object ? new JsonRequest(part) : throw ApiError.BadRequest($"messages[{i}].content parts must be objects", $"messages[{i}].content");
            var type = p.String("type");
            if (type != "text") throw ApiError.BadRequest($"messages[{i}].content has a '{type}' part: this server takes text only", $"messages[{i}].content");
            text.Append(p.String("text"));
        }
        return text.ToString();
    }

    /// <summary>Starts the stream: the first item is fetched here, so errors that arrive before it become 400s.</summary>
    public static async Task<IAsyncEnumerator<T>?> StartAsync<T>(IAsyncEnumerable<T> stream, CancellationToken cancellationToken)
    {
        var e = stream.GetAsyncEnumerator(cancellationToken);
        try
        {
            if (await e.MoveNextAsync().ConfigureAwait(false)) return e;
            await e.DisposeAsync().ConfigureAwait(false);
            return null;
        }
        catch (Exception ex) when (Translate(ex) is { } error)
        {
            await e.DisposeAsync().ConfigureAwait(false);
            throw error;
        }
    }

    /// <summary>The library's typed errors as the 4xx a client should see.</summary>
    public static ApiError? Translate(Exception e) => e switch
    {
        ContextOverflowException o => new ApiError(400,
            $"the prompt holds {o.Count} tokens but the context holds {o.ContextLength} (from position {o.Start}): shorten the prompt or start the server with a larger --ctx",
            "messages", "context_length_exceeded"),
        InvalidSamplingOptionsException s => ApiError.BadRequest(s.Message, s.ParamName),
        ChatTemplateException t => ApiError.BadRequest(t.Message, "messages"),
        GrammarException g => ApiError.BadRequest(g.Message, g.ParamName switch { "JsonSchema" => "response_format", "Tools" => "tools", _ => "grammar" }),
        ArgumentException a when a.ParamName is "prompt" or "messages" or "texts" => ApiError.BadRequest(a.Message),
        _ => null,
    };

    /// <summary>OpenAI's finish_reason (Ollama's done_reason) for the library's.</summary>
    public static string FinishReasonText(FinishReason? reason) => reason switch
    {
        FinishReason.MaxTokens or FinishReason.ContextFull => "length",
        _ => "stop",
    };
}
