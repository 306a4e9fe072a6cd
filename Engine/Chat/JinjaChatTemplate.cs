using System.Text.Json;
using Engine.Chat.Jinja;

namespace Engine.Chat;

/// <summary>
/// A model's own Jinja chat template (tokenizer.chat_template), run by the sandboxed interpreter in
/// <see cref="Engine.Chat.Jinja"/> with the variables transformers' apply_chat_template passes: messages, tools,
/// documents, add_generation_prompt, bos_token, eos_token and extra keyword arguments (enable_thinking, ...).
/// <see cref="Render(IReadOnlyList{ChatMessage}, bool)"/> follows llama.cpp's policy for prompts that are tokenized with BOS added: a leading BOS text is
/// removed. <see cref="Apply"/> gives the exact Hugging Face text.
/// </summary>
internal sealed class JinjaChatTemplate : IChatTemplate
{
    readonly JinjaTemplate _template;
    readonly Func<DateTime> _clock;
    readonly IReadOnlyDictionary<string, object?> _kwargs;
    readonly Lazy<bool> _opensThinking;

    /// <param name="templateText">The Jinja source.</param>
    /// <param name="bosToken">The BOS token text, or null when the tokenizer has none (the variable is then undefined).</param>
    /// <param name="eosToken">The EOS token text, or null.</param>
    /// <param name="clock">The time strftime_now formats; null = the current local time, as transformers.</param>
    /// <param name="kwargs">Extra template variables (plain .NET or JSON values), e.g. enable_thinking.</param>
    /// <param name="name">Name for logs.</param>
    /// <exception cref="ChatTemplateException">The template has a syntax error.</exception>
    public JinjaChatTemplate(string templateText, string? bosToken, string? eosToken, Func<DateTime>? clock = null,
        IReadOnlyDictionary<string, object?>? kwargs = null, string name = "jinja")
        : this(Parse(templateText), string.IsNullOrEmpty(bosToken) ? null : bosToken, string.IsNullOrEmpty(eosToken) ? null : eosToken,
            clock ?? (() => DateTime.Now), kwargs ?? new Dictionary<string, object?>(), name)
    { }

    static JinjaTemplate Parse(string templateText)
    {
        try { return JinjaTemplate.Parse(templateText); }
        catch (JinjaTemplateException e) { throw new ChatTemplateException("chat template: " + e.Message); }
    }

    /// <summary>Shares an already parsed template (<see cref="With"/>).</summary>
    JinjaChatTemplate(JinjaTemplate template, string? bosToken, string? eosToken, Func<DateTime> clock, IReadOnlyDictionary<string, object?> kwargs, string name)
    {
        _template = template;
        BosToken = bosToken;
        EosToken = eosToken;
        _clock = clock;
        _kwargs = kwargs;
        Name = name;
        StopStrings = EosToken is null ? [] : [EosToken];
        _opensThinking = new(ProbeOpensThinking);
    }

    public string Name { get; }
    public string? BosToken { get; }
    public string? EosToken { get; }
    public IReadOnlyList<string> StopStrings { get; }

    /// <summary>True when the generation prompt ends inside an open &lt;think&gt; (it ends with "&lt;think&gt;" or
    /// "&lt;think&gt;\n"), found by rendering a one-message conversation once.</summary>
    public bool GenerationPromptOpensThinking => _opensThinking.Value;

    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt) => Render(messages, addGenerationPrompt, []);

    /// <summary>Renders with tools, as transformers passes them: OpenAI-style message dicts (tool_calls with their
    /// arguments as a mapping, which templates write with tojson; tool results with tool_call_id and name) and the tools as
    /// <c>{"type": "function", "function": {...}}</c>.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyList<ChatTool> tools)
    {
        var list = new JinjaList([.. messages.Select(Message)]);
        var toolList = tools.Count == 0 ? null : new JinjaList([.. tools.Select(Tool)]);
        var text = RenderValues(list, toolList, addGenerationPrompt, null);
        // The tokenizer adds BOS itself (llama.cpp strips it the same way).
        return BosToken is not null && text.StartsWith(BosToken, StringComparison.Ordinal) ? text[BosToken.Length..] : text;
    }

    /// <summary>The same template with more variables (enable_thinking for one request), sharing the parsed template.</summary>
    public JinjaChatTemplate With(string variable, object? value)
    {
        var kwargs = new Dictionary<string, object?>(_kwargs) { [variable] = value };
        return new JinjaChatTemplate(_template, BosToken, EosToken, _clock, kwargs, Name);
    }

    static object? Message(ChatMessage m)
    {
        var d = new JinjaDict();
        d.Set("role", m.Role);
        d.Set("content", m.Content);
        if (m.ToolCalls.Count > 0)
            d.Set("tool_calls", new JinjaList([.. m.ToolCalls.Select(c =>
            {
                var function = new JinjaDict();
                function.Set("name", c.Name);
                function.Set("arguments", Arguments(c.Arguments));
                var call = new JinjaDict();
                call.Set("id", c.Id);
                call.Set("type", "function");
                call.Set("function", function);
                return (object?)call;
            })]));
        if (m.ToolCallId is not null) d.Set("tool_call_id", m.ToolCallId);
        if (m.ToolName is not null) d.Set("name", m.ToolName);
        return d;
    }

    /// <summary>Arguments as a mapping when they are a JSON object (what templates expect), else the text as given.</summary>
    static object? Arguments(string text)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            if (document.RootElement.ValueKind == JsonValueKind.Object) return JinjaValues.FromJson(document.RootElement);
        }
        catch (JsonException) { }
        return text;
    }

    static object? Tool(ChatTool tool)
    {
        var function = new JinjaDict();
        function.Set("name", tool.Name);
        if (tool.Description is not null) function.Set("description", tool.Description);
        function.Set("parameters", tool.Parameters is { } p ? JinjaValues.FromJson(p) : EmptyParameters());
        var d = new JinjaDict();
        d.Set("type", "function");
        d.Set("function", function);
        return d;
    }

    static object? EmptyParameters()
    {
        var d = new JinjaDict();
        d.Set("type", "object");
        d.Set("properties", new JinjaDict());
        return d;
    }

    /// <summary>The exact text transformers' apply_chat_template produces (BOS kept), for `engine template` and an
    /// apply-template route.</summary>
    /// <param name="messages">A JSON array of OpenAI-style message objects, passed through as is.</param>
    /// <param name="tools">A JSON array of tool schemas, or null (the template sees None).</param>
    /// <param name="addGenerationPrompt">End where the assistant's reply begins.</param>
    /// <param name="kwargs">A JSON object of extra variables for this call (on top of the constructor's), or null.</param>
    /// <exception cref="ChatTemplateException">The template raised an error or failed.</exception>
    public string Apply(JsonElement messages, JsonElement? tools, bool addGenerationPrompt, JsonElement? kwargs = null)
    {
        try
        {
            Dictionary<string, object?>? extra = null;
            if (kwargs is { ValueKind: JsonValueKind.Object } k)
            {
                extra = [];
                foreach (var p in k.EnumerateObject()) extra[p.Name] = JinjaValues.FromJson(p.Value);
            }
            var toolValue = tools is { ValueKind: not (JsonValueKind.Null or JsonValueKind.Undefined) } t ? JinjaValues.FromJson(t) : null;
            return RenderValues(JinjaValues.FromJson(messages), toolValue, addGenerationPrompt, extra);
        }
        catch (JinjaTemplateException e) { throw new ChatTemplateException("chat template: " + e.Message); }
    }

    string RenderValues(object? messages, object? tools, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? extra)
    {
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages,
            ["tools"] = tools,
            ["documents"] = null,
            ["add_generation_prompt"] = addGenerationPrompt,
        };
        if (BosToken is not null) variables["bos_token"] = BosToken;
        if (EosToken is not null) variables["eos_token"] = EosToken;
        try
        {
            foreach (var (key, value) in _kwargs) variables[key] = JinjaValues.FromObject(value);
            if (extra is not null) foreach (var (key, value) in extra) variables[key] = value;
            return _template.Render(variables, _clock);
        }
        catch (JinjaTemplateException e) { throw new ChatTemplateException("chat template: " + e.Message); }
    }

    bool ProbeOpensThinking()
    {
        try
        {
            var probe = new JinjaDict();
            probe.Set("role", ChatMessage.User);
            probe.Set("content", "Hi");
            var text = RenderValues(new JinjaList([probe]), null, addGenerationPrompt: true, null);
            return text.EndsWith("<think>", StringComparison.Ordinal) || text.EndsWith("<think>\n", StringComparison.Ordinal);
        }
        catch (ChatTemplateException) { return false; }
    }
}
