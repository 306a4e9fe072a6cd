using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;

namespace Engine;

/// <summary>
/// A <see cref="Model"/> as a Microsoft.Extensions.AI <see cref="IChatClient"/>: the model's chat template, reasoning as
/// <see cref="TextReasoningContent"/>, token usage, finish reasons, and the <see cref="ChatOptions"/> a local model can
/// honour (temperature, top-p, top-k, seed, max output tokens, stop sequences, presence and frequency penalties). Other
/// sampling settings go in <see cref="ChatOptions.AdditionalProperties"/>: <c>min_p</c>, <c>repeat_penalty</c>,
/// <c>repeat_last_n</c>, <c>ignore_eos</c>. It composes with <c>ChatClientBuilder</c> middleware (logging, caching,
/// telemetry) like any other client.
///
/// The client keeps one session, so a conversation that grows turn by turn is only computed for its new tokens. Its
/// requests run one at a time (a second waits for the first).
/// </summary>
public sealed class EngineChatClient : IChatClient
{
    readonly Model _model;
    readonly int _contextLength;
    readonly SemaphoreSlim _turn = new(1, 1);
    readonly ChatClientMetadata _metadata;
    Session? _session;
    bool _disposed;

    /// <summary>A chat client over <paramref name="model"/>; the model stays owned by the caller.</summary>
    /// <param name="model">The loaded model.</param>
    /// <param name="contextLength">Tokens the client's session holds; 0 (the default) takes <see cref="ModelInfo.ContextLength"/>.</param>
    public EngineChatClient(Model model, int contextLength = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfNegative(contextLength);
        _model = model;
        _contextLength = contextLength > 0 ? contextLength : model.Info.ContextLength;
        _metadata = new ChatClientMetadata("engine", null, model.Info.Name);
    }

    /// <inheritdoc/>
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        await GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken).ConfigureAwait(false);

    /// <inheritdoc/>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var turns = Turns(messages, options);
        var generate = Options(options);

        await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _session ??= _model.CreateSession(_contextLength);
            string responseId = "chatcmpl-" + Guid.NewGuid().ToString("N");
            var created = DateTimeOffset.UtcNow;
            int reasoningTokens = 0;
            await foreach (var update in _session.ChatAsync(turns, generate, cancellationToken).ConfigureAwait(false))
            {
                var contents = new List<AIContent>(2);
                if (update.Reasoning.Length > 0) contents.Add(new TextReasoningContent(update.Reasoning));
                if (update.Answer.Length > 0) contents.Add(new TextContent(update.Answer));
                foreach (var call in update.ToolCalls)
                    contents.Add(new FunctionCallContent(call.Id, call.Name, JsonSerializer.Deserialize<Dictionary<string, object?>>(call.Arguments, AIJsonUtilities.DefaultOptions)));
                var token = update.Token;
                if (update.IsReasoning) reasoningTokens++;
                if (token.Timings is { } t)
                    contents.Add(new UsageContent(new UsageDetails
                    {
                        InputTokenCount = t.CachedTokens + t.PromptTokens,
                        CachedInputTokenCount = t.CachedTokens,
                        OutputTokenCount = t.GeneratedTokens,
                        ReasoningTokenCount = reasoningTokens,
                        TotalTokenCount = t.CachedTokens + t.PromptTokens + t.GeneratedTokens,
                    }));
                if (contents.Count == 0 && token.FinishReason is null) continue;
                yield return new ChatResponseUpdate(ChatRole.Assistant, contents)
                {
                    ResponseId = responseId,
                    MessageId = responseId,
                    ModelId = _model.Info.Name,
                    CreatedAt = created,
                    FinishReason = token.FinishReason switch
                    {
                        null => null,
                        _ when update.ToolCalls.Count > 0 => ChatFinishReason.ToolCalls,
                        FinishReason.MaxTokens or FinishReason.ContextFull => ChatFinishReason.Length,
                        _ => ChatFinishReason.Stop,
                    },
                    RawRepresentation = update,
                };
            }
        }
        finally { _turn.Release(); }
    }

    /// <summary>The conversation as the template sees it: text, tool calls and tool results; reasoning of earlier answers is
    /// left out, as the templates of thinking models do.</summary>
    static List<ChatTurn> Turns(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        var turns = new List<ChatTurn>();
        var callNames = new Dictionary<string, string>(); // a result names its function, for templates that show it
        foreach (var message in messages)
        {
            var text = new StringBuilder();
            var calls = new List<ToolCall>();
            foreach (var content in message.Contents)
            {
                switch (content)
                {
                    case TextContent t: text.Append(t.Text); break;
                    case TextReasoningContent: break;
                    case UsageContent: break;
                    case FunctionCallContent call:
                        calls.Add(new ToolCall(call.CallId, call.Name, JsonSerializer.Serialize(call.Arguments ?? new Dictionary<string, object?>(), AIJsonUtilities.DefaultOptions)));
                        callNames[call.CallId] = call.Name;
                        break;
                    case FunctionResultContent result:
                        // Each result is a turn of its own, as the OpenAI API sends them.
                        turns.Add(ChatTurn.Tool(result.CallId, ResultText(result.Result), callNames.GetValueOrDefault(result.CallId)));
                        break;
                    default:
                        throw new NotSupportedException($"a {message.Role} message holds {content.GetType().Name}: this client takes text, function calls and function results");
                }
            }
            if (text.Length > 0 || calls.Count > 0 || !message.Contents.Any(c => c is FunctionResultContent))
                turns.Add(new ChatTurn(message.Role.Value, text.ToString()) { ToolCalls = calls });
        }
        // Instructions join the system message (templates such as Llama 2's take only one), or become it.
        if (options?.Instructions is { Length: > 0 } instructions)
        {
            if (turns.Count > 0 && turns[0].Role == "system") turns[0] = turns[0] with { Content = instructions + "\n\n" + turns[0].Content };
            else turns.Insert(0, ChatTurn.System(instructions));
        }
        return turns;
    }

    /// <summary>A function's result as the text the model reads: strings as they are, anything else as JSON.</summary>
    static string ResultText(object? result) => result switch
    {
        null => "",
        string s => s,
        JsonElement { ValueKind: JsonValueKind.String } e => e.GetString()!,
        _ => JsonSerializer.Serialize(result, AIJsonUtilities.DefaultOptions),
    };

    static GenerateOptions Options(ChatOptions? options)
    {
        var result = new GenerateOptions();
        if (options is null) return result;
        result = result with
        {
            Tools = Tools(options.Tools),
            ToolChoice = options.ToolMode switch
            {
                NoneChatToolMode => ToolChoice.None,
                RequiredChatToolMode { RequiredFunctionName: { } name } => ToolChoice.Function(name),
                RequiredChatToolMode => ToolChoice.Required,
                _ => ToolChoice.Auto,
            },
            // ChatResponseFormat.Json without a schema asks for any JSON object.
            JsonSchema = options.ResponseFormat is ChatResponseFormatJson json ? json.Schema ?? Chat.Tools.ToolCallFormat.AnyObjectSchema : null,
            Temperature = options.Temperature ?? result.Temperature,
            TopP = options.TopP ?? result.TopP,
            TopK = options.TopK ?? result.TopK,
            Seed = options.Seed is long seed ? unchecked((ulong)seed) : null,
            MaxTokens = options.MaxOutputTokens,
            StopSequences = options.StopSequences is { } stops ? [.. stops] : [],
            PresencePenalty = options.PresencePenalty ?? 0,
            FrequencyPenalty = options.FrequencyPenalty ?? 0,
        };
        if (options.AdditionalProperties is { } extra)
        {
            if (extra.TryGetValue("min_p", out var minP)) result = result with { MinP = (float)Number(minP, "min_p") };
            if (extra.TryGetValue("repeat_penalty", out var repeat)) result = result with { RepetitionPenalty = (float)Number(repeat, "repeat_penalty") };
            if (extra.TryGetValue("repeat_last_n", out var lastN)) result = result with { PenaltyLastN = Integer(lastN, "repeat_last_n") };
            if (extra.TryGetValue("ignore_eos", out var ignore)) result = result with { IgnoreEndOfGeneration = Flag(ignore, "ignore_eos") };
        }
        return result;
    }

    static List<ChatTool> Tools(IList<AITool>? tools)
    {
        var result = new List<ChatTool>();
        foreach (var tool in tools ?? [])
            result.Add(tool is AIFunctionDeclaration function
                ? new ChatTool(function.Name, function.Description is { Length: > 0 } d ? d : null, function.JsonSchema)
                : throw new NotSupportedException($"{tool.GetType().Name} '{tool.Name}' is a hosted tool: this client runs functions (AIFunction) only"));
        return result;
    }

    /// <summary>A number from AdditionalProperties, as .NET callers or JSON deserializers put it there.</summary>
    internal static double Number(object? value, string name)
    {
        double? number = value switch
        {
            float f => f,
            double d => d,
            int i => i,
            long l => l,
            decimal m => (double)m,
            JsonElement { ValueKind: JsonValueKind.Number } e => e.GetDouble(),
            JsonElement { ValueKind: JsonValueKind.String } e when double.TryParse(e.GetString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d) => d,
            string s when double.TryParse(s, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d) => d,
            _ => null,
        };
        return number is double n && double.IsFinite(n) ? n
            : throw new InvalidSamplingOptionsException($"{name} must be a finite number, got '{value ?? "null"}'", name);
    }

    internal static int Integer(object? value, string name)
    {
        double n = Number(value, name);
        return n == Math.Floor(n) && n is >= int.MinValue and <= int.MaxValue ? (int)n
            : throw new InvalidSamplingOptionsException($"{name} must be a whole number, got '{value}'", name);
    }

    /// <summary>true or false, as a bool, a JSON boolean, or the words in any case.</summary>
    internal static bool Flag(object? value, string name) => value switch
    {
        bool b => b,
        JsonElement { ValueKind: JsonValueKind.True } => true,
        JsonElement { ValueKind: JsonValueKind.False } => false,
        JsonElement { ValueKind: JsonValueKind.String } e when bool.TryParse(e.GetString(), out var b) => b,
        string s when bool.TryParse(s, out var b) => b,
        _ => throw new InvalidSamplingOptionsException($"{name} must be true or false, got '{value ?? "null"}'", name),
    };

    /// <inheritdoc/>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return _metadata;
        if (serviceType == typeof(Model)) return _model;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Returns the client's session memory; the model stays open. A request still running ends with an
    /// <see cref="ObjectDisposedException"/> at its next step.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _session?.Dispose();
        // The semaphore is not disposed: it holds no wait handle, and a request in flight still releases it.
    }
}
