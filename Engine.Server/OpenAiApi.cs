using System.Text.Json;
using System.Threading.Channels;

namespace Engine.Server;

/// <summary>The OpenAI-compatible routes under /v1: chat completions, completions, embeddings and models. Streams are
/// server-sent events (<c>data: {...}</c> then <c>data: [DONE]</c>); every answer that is not streamed carries usage,
/// and a stream does too when <c>stream_options.include_usage</c> asks.</summary>
internal static class OpenAiApi
{
    public static void Map(WebApplication app, ModelCatalog catalog, ServerMetrics metrics, ServerOptions options)
    {
        app.MapGet("/v1/models", () => Results.Json(new
        {
            @object = "list",
            data = catalog.All.Select(ModelObject).ToArray(),
        }, ServerJson.Options));
        app.MapGet("/v1/models/{**id}", (string id) => Results.Json(ModelObject(catalog.Find(id)), ServerJson.Options));
        app.MapPost("/v1/chat/completions", (HttpContext http) => ChatAsync(http, catalog, metrics, options));
        app.MapPost("/v1/completions", (HttpContext http) => CompletionAsync(http, catalog, metrics, options));
        app.MapPost("/v1/embeddings", (HttpContext http) => EmbeddingsAsync(http, catalog));
        app.MapPost("/apply-template", (HttpContext http) => ApplyTemplateAsync(http, catalog));
    }

    /// <summary>llama-server's /apply-template: a chat request's prompt as the model's template renders it (tools and
    /// chat_template_kwargs.enable_thinking included), without generating; a template error is a 400.</summary>
    static async Task ApplyTemplateAsync(HttpContext http, ModelCatalog catalog)
    {
        var ct = http.RequestAborted;
        var body = await JsonRequest.ReadAsync(http.Request, ct).ConfigureAwait(false);
        var model = body.RequiredString("model");
        var turns = Generation.Messages(body);
        var options = new GenerateOptions
        {
            EnableThinking = body.Object("chat_template_kwargs")?.Bool("enable_thinking"),
            Tools = Generation.Tools(body),
            ToolChoice = ToolChoiceOf(body),
        };
        using var lease = await catalog.AcquireAsync(model, null, ct).ConfigureAwait(false);
        string prompt;
        try { prompt = lease.Model.ApplyChatTemplate(turns, options); }
        catch (Exception e) when (Generation.Translate(e) is { } error) { throw error; }
        await Results.Json(new { prompt }, ServerJson.Options).ExecuteAsync(http).ConfigureAwait(false);
    }

    static object ModelObject(ModelCatalog.Entry e) => new
    {
        id = e.Name,
        @object = "model",
        created = new DateTimeOffset(e.Modified).ToUnixTimeSeconds(),
        owned_by = "engine",
    };

    /// <summary>A request's sampling options in OpenAI's names. max_tokens and max_completion_tokens are the same
    /// limit (the newer name wins); absent, generation runs until the model ends or the context is full.</summary>
    static GenerateOptions Sampling(JsonRequest body, ServerOptions options)
    {
        var o = new GenerateOptions();
        int? maxTokens = body.Int("max_completion_tokens", 1, Generation.MaxTokensLimit) ?? body.Int("max_tokens", 1, Generation.MaxTokensLimit);
        if (body.Float("top_p", 0, 1) is 0) throw ApiError.BadRequest("'top_p' must be in (0, 1], got 0", "top_p");
        // logit_bias is not applied by this server: an empty map is accepted, anything else is refused rather than ignored.
        if (body.Get("logit_bias") is { } bias && (bias.ValueKind != JsonValueKind.Object || bias.EnumerateObject().Any()))
            throw ApiError.BadRequest("'logit_bias' is not supported by this server", "logit_bias");
        return o with
        {
            MaxTokens = maxTokens,
            Temperature = body.Float("temperature", 0, 2) ?? o.Temperature,
            TopP = body.Float("top_p", 0, 1) ?? o.TopP,
            TopK = body.Int("top_k", 0, 1 << 20) ?? o.TopK,
            MinP = body.Float("min_p", 0, 1) ?? o.MinP,
            PresencePenalty = body.Float("presence_penalty", -2, 2) ?? o.PresencePenalty,
            FrequencyPenalty = body.Float("frequency_penalty", -2, 2) ?? o.FrequencyPenalty,
            RepetitionPenalty = body.Float("repetition_penalty", 0, 10) ?? body.Float("repeat_penalty", 0, 10) ?? o.RepetitionPenalty,
            Seed = body.Long("seed", long.MinValue, long.MaxValue) is { } seed ? unchecked((ulong)seed) : null,
            StopSequences = body.Strings("stop", Generation.MaxStops) ?? [],
            Grammar = body.String("grammar"),
            JsonSchema = JsonSchemaOf(body),
        };
    }

    /// <summary>OpenAI's response_format (json_object: any object; json_schema: its schema), or llama-server's json_schema
    /// field.</summary>
    static JsonElement? JsonSchemaOf(JsonRequest body)
    {
        if (body.Get("json_schema") is { } direct)
            return direct.ValueKind == JsonValueKind.Object ? direct.Clone() : throw ApiError.BadRequest("'json_schema' must be a JSON Schema object", "json_schema");
        if (body.Object("response_format") is not { } format) return null;
        return format.String("type") switch
        {
            null or "text" => null,
            "json_object" => format.Get("schema")?.Clone() ?? Generation.AnyJsonObject,
            "json_schema" => format.Object("json_schema")?.Get("schema") is { ValueKind: JsonValueKind.Object } schema ? schema.Clone()
                : throw ApiError.BadRequest("response_format.json_schema.schema must be a JSON Schema object", "response_format"),
            var other => throw ApiError.BadRequest($"response_format type '{other}' is not one of text, json_object, json_schema", "response_format"),
        };
    }

    /// <summary>tool_choice: "auto", "none", "required", or {"type": "function", "function": {"name": ...}}.</summary>
    static ToolChoice ToolChoiceOf(JsonRequest body)
    {
        if (body.Get("tool_choice") is not { } choice) return ToolChoice.Auto;
        if (choice.ValueKind == JsonValueKind.String)
            return choice.GetString() switch
            {
                "auto" => ToolChoice.Auto,
                "none" => ToolChoice.None,
                "required" => ToolChoice.Required,
                var other => throw ApiError.BadRequest($"'tool_choice' must be auto, none, required or a function, got '{other}'", "tool_choice"),
            };
        if (choice.ValueKind == JsonValueKind.Object && new JsonRequest(choice).Object("function")?.String("name") is { Length: > 0 } name)
            return ToolChoice.Function(name);
        throw ApiError.BadRequest("'tool_choice' must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": ...}}", "tool_choice");
    }

    /// <summary>Reads the parts every generating route shares.</summary>
    sealed record Common(string Model, GenerateOptions Options, int Choices, bool Stream, bool IncludeUsage, bool LogProbs, int TopLogProbs);

    static Common ReadCommon(JsonRequest body, ServerOptions options)
    {
        var model = body.RequiredString("model");
        var sampling = Sampling(body, options);
        int n = body.Int("n", 1, options.MaxChoices) ?? 1;
        bool stream = body.Bool("stream") ?? false;
        bool includeUsage = body.Object("stream_options")?.Bool("include_usage") ?? false;
        // Chat takes logprobs: true and top_logprobs; the legacy completions take logprobs: N.
        bool logprobs = false;
        int top = 0;
        if (body.Get("logprobs") is { } lp)
        {
            if (lp.ValueKind is JsonValueKind.True or JsonValueKind.False) logprobs = lp.ValueKind == JsonValueKind.True;
            else { top = body.Int("logprobs", 0, GenerateOptions.MaxTopLogProbabilities) ?? 0; logprobs = true; }
        }
        top = body.Int("top_logprobs", 0, GenerateOptions.MaxTopLogProbabilities) ?? top;
        if (top > 0 && !logprobs && body.Has("top_logprobs")) throw ApiError.BadRequest("'top_logprobs' needs 'logprobs': true", "top_logprobs");
        return new Common(model, sampling with { TopLogProbabilities = top }, n, stream, includeUsage, logprobs, top);
    }

    static GenerateOptions ForChoice(GenerateOptions o, int index) =>
        index == 0 || o.Seed is null ? o : o with { Seed = unchecked(o.Seed.Value + (ulong)index) };

    /// <summary>One generated piece of one choice.</summary>
    readonly record struct Piece(int Index, string Reasoning, string Answer, GeneratedToken Token, IReadOnlyList<ToolCall> ToolCalls);

    /// <summary>A request's running choices: their merged pieces, and the generations behind them. Disposing it (before
    /// the model lease) cancels the choices still running and waits for them, so no session outlives its request.</summary>
    sealed class ChoiceRun : IAsyncDisposable
    {
        readonly CancellationTokenSource _cancel;
        readonly List<Task> _pumps = [];
        public ChannelReader<Piece> Reader { get; }

        ChoiceRun(CancellationTokenSource cancel, ChannelReader<Piece> reader) { _cancel = cancel; Reader = reader; }

        /// <summary>Starts the request's choices, each in its own session. The first piece of every choice is awaited
        /// before returning, so a prompt that does not fit is a 400, not a broken stream.</summary>
        public static async Task<ChoiceRun> StartAsync(Model model, int choices, Func<Session, int, CancellationToken, IAsyncEnumerable<Piece>> run,
            CancellationToken requestAborted)
        {
            var cancel = CancellationTokenSource.CreateLinkedTokenSource(requestAborted);
            var channel = Channel.CreateUnbounded<Piece>(new UnboundedChannelOptions { SingleReader = true });
            var started = new List<(Session Session, IAsyncEnumerator<Piece> Stream)>();
            try
            {
                for (int i = 0; i < choices; i++)
                {
                    var session = model.CreateSession();
                    IAsyncEnumerator<Piece>? stream;
                    try { stream = await Generation.StartAsync(run(session, i, cancel.Token), cancel.Token).ConfigureAwait(false); }
                    catch { session.Dispose(); throw; }
                    if (stream is null) { session.Dispose(); continue; }
                    started.Add((session, stream));
                }
            }
            catch
            {
                foreach (var (s, e) in started) { await e.DisposeAsync().ConfigureAwait(false); s.Dispose(); }
                cancel.Dispose();
                throw;
            }
            var result = new ChoiceRun(cancel, channel.Reader);
            int remaining = started.Count;
            if (remaining == 0) channel.Writer.Complete();
            foreach (var (session, stream) in started)
                result._pumps.Add(Task.Run(async () =>
                {
                    try
                    {
                        do channel.Writer.TryWrite(stream.Current);
                        while (await stream.MoveNextAsync().ConfigureAwait(false));
                    }
                    catch (Exception e) { channel.Writer.TryComplete(e); }
                    finally
                    {
                        try
                        {
                            await stream.DisposeAsync().ConfigureAwait(false);
                            session.Dispose();
                        }
                        finally
                        {
                            if (Interlocked.Decrement(ref remaining) == 0) channel.Writer.TryComplete();
                        }
                    }
                }, CancellationToken.None));
            return result;
        }

        public async ValueTask DisposeAsync()
        {
            _cancel.Cancel();
            try { await Task.WhenAll(_pumps).ConfigureAwait(false); }
            catch (Exception) { } // each pump reports through the channel; nothing is left to tell
            _cancel.Dispose();
        }
    }

    static async IAsyncEnumerable<Piece> ChatPieces(Session session, int index, List<ChatTurn> turns, GenerateOptions options,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var u in session.ChatAsync(turns, options, cancellationToken).ConfigureAwait(false))
            yield return new Piece(index, u.Reasoning, u.Answer, u.Token, u.ToolCalls);
    }

    static async IAsyncEnumerable<Piece> TextPieces(Session session, int index, string prompt, GenerateOptions options,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var t in session.GenerateAsync(prompt, options, cancellationToken).ConfigureAwait(false))
            yield return new Piece(index, "", t.IsEndOfGeneration ? "" : t.Text, t, []);
    }

    static async Task ChatAsync(HttpContext http, ModelCatalog catalog, ServerMetrics metrics, ServerOptions options)
    {
        var ct = http.RequestAborted;
        var body = await JsonRequest.ReadAsync(http.Request, ct).ConfigureAwait(false);
        var common = ReadCommon(body, options);
        var turns = Generation.Messages(body);
        // reasoning_format "none" (llama-server's name) keeps the reasoning inline in the content, inside <think> tags.
        var reasoningFormat = body.String("reasoning_format") ?? "auto";
        if (reasoningFormat is not ("auto" or "none" or "deepseek" or "parsed"))
            throw ApiError.BadRequest($"'reasoning_format' must be auto, deepseek or none, got '{reasoningFormat}'", "reasoning_format");
        bool inline = reasoningFormat == "none";
        // Qwen3's switch, as vLLM and llama-server take it: chat_template_kwargs.enable_thinking.
        var chatOptions = common.Options with
        {
            EnableThinking = body.Object("chat_template_kwargs")?.Bool("enable_thinking"),
            Tools = Generation.Tools(body),
            ToolChoice = ToolChoiceOf(body),
        };
        using var lease = await catalog.AcquireAsync(common.Model, null, ct).ConfigureAwait(false);
        await using var run = await ChoiceRun.StartAsync(lease.Model, common.Choices,
            (s, i, token) => metrics.Measure(ChatPieces(s, i, turns, ForChoice(chatOptions, i), token), p => p.Token, EngineServer.Arrival(http)), ct).ConfigureAwait(false);
        var reader = run.Reader;
        var id = "chatcmpl-" + Guid.NewGuid().ToString("N")[..24];
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        if (common.Stream) await StreamChatAsync(http, reader, common, lease.Entry.Name, id, created, inline, ct).ConfigureAwait(false);
        else await WholeChatAsync(http, reader, common, lease.Entry.Name, id, created, inline, ct).ConfigureAwait(false);
    }

    sealed class ChoiceState
    {
        public readonly System.Text.StringBuilder Reasoning = new(), Answer = new();
        public readonly List<object> LogProbs = [];
        public string? FinishReason;
        public IReadOnlyList<ToolCall> ToolCalls = [];
        public bool RoleSent, InThinkTag;
        public GenerationTimings? Timings;
    }

    static async Task WholeChatAsync(HttpContext http, ChannelReader<Piece> reader, Common common, string model, string id, long created, bool inline, CancellationToken ct)
    {
        var choices = Enumerable.Range(0, common.Choices).Select(_ => new ChoiceState()).ToArray();
        await foreach (var p in reader.ReadAllAsync(ct).ConfigureAwait(false))
        {
            var c = choices[p.Index];
            c.Reasoning.Append(p.Reasoning);
            c.Answer.Append(p.Answer);
            if (common.LogProbs && !p.Token.IsEndOfGeneration) c.LogProbs.Add(LogProb(p.Token, common.TopLogProbs));
            if (p.Token.FinishReason is { } f) { c.FinishReason = p.ToolCalls.Count > 0 ? "tool_calls" : Generation.FinishReasonText(f); c.Timings = p.Token.Timings; c.ToolCalls = p.ToolCalls; }
        }
        await Results.Json(new
        {
            id,
            @object = "chat.completion",
            created,
            model,
            choices = choices.Select((c, i) => new
            {
                index = i,
                message = new
                {
                    role = "assistant",
                    content = inline && c.Reasoning.Length > 0 ? $"<think>{c.Reasoning}</think>{c.Answer}"
                        : c.Answer.Length == 0 && c.ToolCalls.Count > 0 ? null : c.Answer.ToString(),
                    reasoning_content = inline || c.Reasoning.Length == 0 ? null : c.Reasoning.ToString(),
                    tool_calls = c.ToolCalls.Count > 0 ? ToolCallsJson(c.ToolCalls) : null,
                },
                logprobs = common.LogProbs ? new { content = c.LogProbs } : null,
                finish_reason = c.FinishReason ?? "stop",
            }).ToArray(),
            usage = Usage(choices.Select(c => c.Timings)),
        }, ServerJson.Options).ExecuteAsync(http).ConfigureAwait(false);
    }

    static async Task StreamChatAsync(HttpContext http, ChannelReader<Piece> reader, Common common, string model, string id, long created, bool inline, CancellationToken ct)
    {
        var sse = await ServerSentEvents.StartAsync(http).ConfigureAwait(false);
        var choices = Enumerable.Range(0, common.Choices).Select(_ => new ChoiceState()).ToArray();
        await foreach (var p in reader.ReadAllAsync(ct).ConfigureAwait(false))
        {
            var c = choices[p.Index];
            string? content = p.Answer.Length > 0 ? p.Answer : null, reasoning = p.Reasoning.Length > 0 ? p.Reasoning : null;
            if (inline)
            {
                var text = new System.Text.StringBuilder();
                if (reasoning is not null && !c.InThinkTag) { text.Append("<think>"); c.InThinkTag = true; }
                text.Append(reasoning);
                if (content is not null && c.InThinkTag) { text.Append("</think>"); c.InThinkTag = false; }
                text.Append(content);
                content = text.Length > 0 ? text.ToString() : null;
                reasoning = null;
            }
            string? finish = p.Token.FinishReason is { } f ? p.ToolCalls.Count > 0 ? "tool_calls" : Generation.FinishReasonText(f) : null;
            if (finish is not null) c.Timings = p.Token.Timings;
            if (content is null && reasoning is null && finish is null && c.RoleSent) continue;
            var delta = new Dictionary<string, object?>();
            if (!c.RoleSent) { delta["role"] = "assistant"; c.RoleSent = true; }
            if (content is not null || (reasoning is null && delta.Count > 0)) delta["content"] = content ?? "";
            if (reasoning is not null) delta["reasoning_content"] = reasoning;
            // Calls arrive whole with the last piece: one delta per call, with its index, id, name and all its arguments.
            if (p.ToolCalls.Count > 0) delta["tool_calls"] = ToolCallsJson(p.ToolCalls, withIndex: true);
            await sse.WriteAsync(new
            {
                id,
                @object = "chat.completion.chunk",
                created,
                model,
                choices = new[]
                {
                    new
                    {
                        index = p.Index,
                        delta,
                        logprobs = common.LogProbs && !p.Token.IsEndOfGeneration ? new { content = new[] { LogProb(p.Token, common.TopLogProbs) } } : null,
                        finish_reason = finish,
                    },
                },
            }, ct).ConfigureAwait(false);
        }
        if (common.IncludeUsage)
            await sse.WriteAsync(new { id, @object = "chat.completion.chunk", created, model, choices = Array.Empty<object>(), usage = Usage(choices.Select(c => c.Timings)) }, ct).ConfigureAwait(false);
        await sse.DoneAsync(ct).ConfigureAwait(false);
    }

    static async Task CompletionAsync(HttpContext http, ModelCatalog catalog, ServerMetrics metrics, ServerOptions options)
    {
        var ct = http.RequestAborted;
        var body = await JsonRequest.ReadAsync(http.Request, ct).ConfigureAwait(false);
        var common = ReadCommon(body, options);
        var prompts = body.Strings("prompt", 1) ?? throw ApiError.BadRequest("'prompt' is required", "prompt");
        if (prompts.Count != 1) throw ApiError.BadRequest("'prompt' must be one string", "prompt");
        if (body.Has("suffix")) throw ApiError.BadRequest("'suffix' (fill in the middle) is not supported", "suffix");
        bool echo = body.Bool("echo") ?? false;
        var prompt = prompts[0];
        // The legacy endpoint's documented default is 16 tokens.
        var sampling = common.Options.MaxTokens is null && !body.Has("max_tokens") ? common.Options with { MaxTokens = 16 } : common.Options;
        using var lease = await catalog.AcquireAsync(common.Model, null, ct).ConfigureAwait(false);
        await using var run = await ChoiceRun.StartAsync(lease.Model, common.Choices,
            (s, i, token) => metrics.Measure(TextPieces(s, i, prompt, ForChoice(sampling, i), token), p => p.Token, EngineServer.Arrival(http)), ct).ConfigureAwait(false);
        var reader = run.Reader;
        var id = "cmpl-" + Guid.NewGuid().ToString("N")[..24];
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var name = lease.Entry.Name;
        var choices = Enumerable.Range(0, common.Choices).Select(_ => new ChoiceState()).ToArray();
        if (common.Stream)
        {
            var sse = await ServerSentEvents.StartAsync(http).ConfigureAwait(false);
            if (echo)
                for (int i = 0; i < common.Choices; i++)
                    await sse.WriteAsync(new { id, @object = "text_completion", created, model = name, choices = new[] { new { index = i, text = prompt, logprobs = (object?)null, finish_reason = (string?)null } } }, ct).ConfigureAwait(false);
            await foreach (var p in reader.ReadAllAsync(ct).ConfigureAwait(false))
            {
                string? finish = p.Token.FinishReason is { } f ? Generation.FinishReasonText(f) : null;
                if (finish is not null) choices[p.Index].Timings = p.Token.Timings;
                await sse.WriteAsync(new
                {
                    id, @object = "text_completion", created, model = name,
                    choices = new[] { new { index = p.Index, text = p.Answer, logprobs = common.LogProbs ? LegacyLogProbs([p.Token]) : null, finish_reason = finish } },
                }, ct).ConfigureAwait(false);
            }
            if (common.IncludeUsage)
                await sse.WriteAsync(new { id, @object = "text_completion", created, model = name, choices = Array.Empty<object>(), usage = Usage(choices.Select(c => c.Timings)) }, ct).ConfigureAwait(false);
            await sse.DoneAsync(ct).ConfigureAwait(false);
            return;
        }
        var tokens = Enumerable.Range(0, common.Choices).Select(_ => new List<GeneratedToken>()).ToArray();
        await foreach (var p in reader.ReadAllAsync(ct).ConfigureAwait(false))
        {
            choices[p.Index].Answer.Append(p.Answer);
            if (!p.Token.IsEndOfGeneration) tokens[p.Index].Add(p.Token);
            if (p.Token.FinishReason is { } f) { choices[p.Index].FinishReason = Generation.FinishReasonText(f); choices[p.Index].Timings = p.Token.Timings; }
        }
        await Results.Json(new
        {
            id, @object = "text_completion", created, model = name,
            choices = choices.Select((c, i) => new
            {
                index = i,
                text = (echo ? prompt : "") + c.Answer,
                logprobs = common.LogProbs ? LegacyLogProbs(tokens[i]) : null,
                finish_reason = c.FinishReason ?? "stop",
            }).ToArray(),
            usage = Usage(choices.Select(c => c.Timings)),
        }, ServerJson.Options).ExecuteAsync(http).ConfigureAwait(false);
    }

    static async Task EmbeddingsAsync(HttpContext http, ModelCatalog catalog)
    {
        var ct = http.RequestAborted;
        var body = await JsonRequest.ReadAsync(http.Request, ct).ConfigureAwait(false);
        var model = body.RequiredString("model");
        var inputs = body.Strings("input", 2048) ?? throw ApiError.BadRequest("'input' is required", "input");
        if (inputs.Count == 0) throw ApiError.BadRequest("'input' is empty", "input");
        if (inputs.Any(s => s.Length == 0)) throw ApiError.BadRequest("'input' holds an empty string", "input");
        var format = body.String("encoding_format") ?? "float";
        if (format is not ("float" or "base64")) throw ApiError.BadRequest($"'encoding_format' must be float or base64, got '{format}'", "encoding_format");
        int? dimensions = body.Int("dimensions", 1, 1 << 20);
        using var lease = await catalog.AcquireAsync(model, null, ct).ConfigureAwait(false);
        if (dimensions is { } d && d != lease.Model.Info.EmbeddingLength)
            throw ApiError.BadRequest($"'dimensions' must be the model's embedding length {lease.Model.Info.EmbeddingLength}, got {d}", "dimensions");
        IReadOnlyList<float[]> vectors;
        try { vectors = await lease.Model.EmbedAsync(inputs, cancellationToken: ct).ConfigureAwait(false); }
        catch (Exception e) when (Generation.Translate(e) is { } error) { throw error; }
        int promptTokens = inputs.Sum(s => lease.Model.Tokenize(s).Count);
        await Results.Json(new
        {
            @object = "list",
            data = vectors.Select((v, i) => new
            {
                @object = "embedding",
                index = i,
                embedding = format == "base64" ? (object)Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(v.AsSpan())) : v,
            }).ToArray(),
            model = lease.Entry.Name,
            usage = new { prompt_tokens = promptTokens, total_tokens = promptTokens },
        }, ServerJson.Options).ExecuteAsync(http).ConfigureAwait(false);
    }

    static object[] ToolCallsJson(IReadOnlyList<ToolCall> calls, bool withIndex = false) =>
        [.. calls.Select((c, i) => withIndex
            ? (object)new { index = i, id = c.Id, type = "function", function = new { name = c.Name, arguments = c.Arguments } }
            : new { id = c.Id, type = "function", function = new { name = c.Name, arguments = c.Arguments } })];

    static object Usage(IEnumerable<GenerationTimings?> timings)
    {
        var list = timings.Where(t => t is not null).Select(t => t!).ToList();
        // Every choice reads the same prompt; it is counted once, as OpenAI does.
        int prompt = list.Count > 0 ? list[0].PromptTokens + list[0].CachedTokens : 0;
        int cached = list.Count > 0 ? list[0].CachedTokens : 0;
        int completion = list.Sum(t => t.GeneratedTokens);
        return new
        {
            prompt_tokens = prompt,
            completion_tokens = completion,
            total_tokens = prompt + completion,
            prompt_tokens_details = new { cached_tokens = cached },
        };
    }

    static object LogProb(GeneratedToken t, int top) => new
    {
        token = t.Text,
        logprob = t.LogProbability,
        bytes = System.Text.Encoding.UTF8.GetBytes(t.Text),
        top_logprobs = t.TopAlternatives.Take(top).Select(a => new { token = a.Text, logprob = a.LogProbability, bytes = System.Text.Encoding.UTF8.GetBytes(a.Text) }).ToArray(),
    };

    static object LegacyLogProbs(IReadOnlyList<GeneratedToken> tokens) => new
    {
        tokens = tokens.Select(t => t.Text).ToArray(),
        token_logprobs = tokens.Select(t => t.LogProbability).ToArray(),
        top_logprobs = tokens.Select(TopByText).ToArray(),
        text_offset = Offsets(tokens),
    };

    /// <summary>The legacy shape keys alternatives by text; two that decode alike (partial UTF-8) keep the likelier.</summary>
    static Dictionary<string, float> TopByText(GeneratedToken t)
    {
        var byText = new Dictionary<string, float>(StringComparer.Ordinal);
        foreach (var a in t.TopAlternatives) byText.TryAdd(a.Text, a.LogProbability);
        return byText;
    }

    static int[] Offsets(IReadOnlyList<GeneratedToken> tokens)
    {
        var offsets = new int[tokens.Count];
        int at = 0;
        for (int i = 0; i < tokens.Count; i++) { offsets[i] = at; at += tokens[i].Text.Length; }
        return offsets;
    }
}
