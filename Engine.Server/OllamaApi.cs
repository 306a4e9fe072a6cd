using System.Text.Json;

namespace Engine.Server;

/// <summary>The Ollama-compatible routes under /api: chat and generate (NDJSON streams unless <c>stream:false</c>),
/// embed and embeddings, tags, show, ps and version. Durations are nanoseconds, as Ollama reports them; reasoning goes
/// in <c>message.thinking</c> (generate: <c>thinking</c>).</summary>
internal static class OllamaApi
{
    /// <summary>The Ollama API level this server speaks, for clients that check /api/version.</summary>
    public const string Version = "0.12.0";

    public static void Map(WebApplication app, ModelCatalog catalog, ServerMetrics metrics, ServerOptions options)
    {
        app.MapGet("/api/version", () => Results.Json(new { version = Version }, ServerJson.Options));
        app.MapGet("/api/tags", () => Results.Json(new { models = catalog.All.Select(e => Tag(e)).ToArray() }, ServerJson.Options));
        app.MapGet("/api/ps", () => Results.Json(new
        {
            models = catalog.All.Where(e => e.Loaded is not null).Select(e => new
            {
                name = e.Name,
                model = e.Name,
                size = e.Loaded?.BytesInMemory ?? 0,
                digest = Digest(e),
                details = Details(e, e.Loaded),
                expires_at = e.ExpiresAt == DateTime.MaxValue ? DateTime.UtcNow.AddYears(100) : e.ExpiresAt,
                size_vram = 0,
                context_length = e.Loaded?.Info.ContextLength ?? 0,
            }).ToArray(),
        }, ServerJson.Options));
        app.MapPost("/api/show", (HttpContext http) => ShowAsync(http, catalog));
        app.MapPost("/api/chat", (HttpContext http) => ChatAsync(http, catalog, metrics, options, chat: true));
        app.MapPost("/api/generate", (HttpContext http) => ChatAsync(http, catalog, metrics, options, chat: false));
        app.MapPost("/api/embed", (HttpContext http) => EmbedAsync(http, catalog, legacy: false));
        app.MapPost("/api/embeddings", (HttpContext http) => EmbedAsync(http, catalog, legacy: true));
    }

    static object Tag(ModelCatalog.Entry e) => new
    {
        name = e.Name,
        model = e.Name,
        modified_at = e.Modified,
        size = e.FileBytes,
        digest = Digest(e),
        details = Details(e, e.Loaded),
    };

    static string Digest(ModelCatalog.Entry e) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"{e.Path}|{e.FileBytes}|{e.Modified.Ticks}")));

    static object Details(ModelCatalog.Entry e, Model? model) => new
    {
        parent_model = "",
        format = Directory.Exists(e.Path) ? "safetensors" : "gguf",
        family = model?.Info.Architecture ?? "",
        families = model is null ? Array.Empty<string>() : [model.Info.Architecture],
        parameter_size = model is null ? "" : ModelCatalog.Parameters(model.Info.ParameterCount),
        quantization_level = model is null ? "" : string.Join(",", model.Info.TensorTypes.OrderByDescending(kv => kv.Value).Take(1).Select(kv => kv.Key)),
    };

    /// <summary>Ollama's keep_alive: a duration string ("5m", "1h", "30s"), a number of seconds, or negative to keep
    /// the model loaded.</summary>
    static TimeSpan? KeepAlive(JsonRequest body)
    {
        if (body.Get("keep_alive") is not { } v) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double seconds))
            return seconds < 0 ? TimeSpan.FromSeconds(-1) : TimeSpan.FromSeconds(Math.Min(seconds, 1e9));
        if (v.ValueKind == JsonValueKind.String)
        {
            var text = v.GetString()!.Trim();
            if (text.StartsWith('-')) return TimeSpan.FromSeconds(-1);
            double scale = text.EndsWith("ms") ? 0.001 : text.EndsWith('s') ? 1 : text.EndsWith('m') ? 60 : text.EndsWith('h') ? 3600 : 1;
            var digits = text.TrimEnd('m', 's', 'h');
            if (double.TryParse(digits, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double n) && n >= 0)
                return TimeSpan.FromSeconds(Math.Min(n * scale, 1e9));
        }
        throw ApiError.BadRequest($"'keep_alive' must be a duration such as \"5m\" or a number of seconds, got {v.GetRawText()}", "keep_alive");
    }

    /// <summary>Ollama's options object in the library's terms.</summary>
    static GenerateOptions Sampling(JsonRequest body)
    {
        var o = new GenerateOptions();
        if (body.Object("options") is not { } opts) return o;
        int? predict = opts.Int("num_predict", -2, Generation.MaxTokensLimit);
        return o with
        {
            MaxTokens = predict is null or < 0 ? null : predict,
            Temperature = opts.Float("temperature", 0, 100) ?? o.Temperature,
            TopK = opts.Int("top_k", 0, 1 << 20) ?? o.TopK,
            TopP = opts.Float("top_p", 0, 1) ?? o.TopP,
            MinP = opts.Float("min_p", 0, 1) ?? o.MinP,
            RepetitionPenalty = opts.Float("repeat_penalty", 0, 10) ?? o.RepetitionPenalty,
            PenaltyLastN = opts.Int("repeat_last_n", -1, 1 << 20) is { } n ? (n < 0 ? o.PenaltyLastN : n) : o.PenaltyLastN,
            PresencePenalty = opts.Float("presence_penalty", -2, 2) ?? o.PresencePenalty,
            FrequencyPenalty = opts.Float("frequency_penalty", -2, 2) ?? o.FrequencyPenalty,
            Seed = opts.Long("seed", long.MinValue, long.MaxValue) is { } seed and >= 0 ? (ulong)seed : null,
            StopSequences = opts.Strings("stop", Generation.MaxStops) ?? [],
        };
    }

    /// <summary>format: "json" (any JSON object) or a JSON Schema object.</summary>
    static JsonElement? Format(JsonRequest body) => body.Get("format") switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } s when s.GetString() == "json" => Generation.AnyJsonObject,
        { ValueKind: JsonValueKind.String } s when s.GetString() == "" => null,
        { ValueKind: JsonValueKind.Object } schema => schema.Clone(),
        _ => throw ApiError.BadRequest("'format' must be \"json\" or a JSON Schema object", "format"),
    };

    static async Task ChatAsync(HttpContext http, ModelCatalog catalog, ServerMetrics metrics, ServerOptions options, bool chat)
    {
        var ct = http.RequestAborted;
        var body = await JsonRequest.ReadAsync(http.Request, ct).ConfigureAwait(false);
        var name = body.RequiredString("model");
        bool stream = body.Bool("stream") ?? true;
        var keepAlive = KeepAlive(body);
        // think: false turns a Qwen3 model's reasoning off (and hides any that comes anyway); true keeps it on.
        bool? think = body.Get("think") is { ValueKind: JsonValueKind.True or JsonValueKind.False } t ? t.ValueKind == JsonValueKind.True : null;
        var sampling = Sampling(body) with { EnableThinking = think, Tools = chat ? Generation.Tools(body) : [], JsonSchema = Format(body) };
        if (options.AdjustGeneration is { } adjust) sampling = adjust(sampling);
        // num_ctx sizes this request's session (at most the model's trained context and the KV pool); a prompt that
        // does not fit is refused with both counts, never cut.
        int? numCtx = body.Object("options")?.Int("num_ctx", 1, 1 << 24);
        List<ChatTurn>? turns = null;
        string? prompt = null;
        bool raw = false;
        // Ollama clients load a model with an empty request and unload it with keep_alive 0 and nothing to say.
        bool nothingToSay = chat
            ? body.Get("messages") is not { } m || (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 0)
            : (body.String("prompt") ?? "").Length == 0;
        if (nothingToSay)
        {
            var entry = catalog.Find(name);
            if (keepAlive == TimeSpan.Zero)
            {
                entry.UnloadIfIdle();
                await Results.Json(new { model = entry.Name, created_at = DateTime.UtcNow, done = true, done_reason = "unload" }, ServerJson.Options).ExecuteAsync(http).ConfigureAwait(false);
                return;
            }
            using (await catalog.AcquireAsync(name, keepAlive, ct).ConfigureAwait(false)) { }
            await Results.Json(new { model = entry.Name, created_at = DateTime.UtcNow, done = true, done_reason = "load" }, ServerJson.Options).ExecuteAsync(http).ConfigureAwait(false);
            return;
        }
        if (chat) turns = Generation.Messages(body);
        else
        {
            prompt = body.String("prompt") ?? "";
            raw = body.Bool("raw") ?? false;
            var system = body.String("system");
            if (!raw) turns = [.. system is null ? [] : new[] { new ChatTurn("system", system) }, new ChatTurn("user", prompt)];
        }
        var started = DateTime.UtcNow;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        bool wasLoaded = catalog.Find(name).Loaded is not null;
        using var lease = await catalog.AcquireAsync(name, keepAlive, ct).ConfigureAwait(false);
        var loadTime = wasLoaded ? TimeSpan.Zero : watch.Elapsed;
        var info = lease.Model.Info;
        using var session = numCtx is { } n
            ? lease.Model.CreateSession(Math.Min(n, Math.Min(info.TrainedContextLength, info.KvCacheCapacity)))
            : lease.Model.CreateSession();
        IAsyncEnumerable<(string Reasoning, string Answer, GeneratedToken Token, IReadOnlyList<ToolCall> Calls)> pieces = turns is not null
            ? Pieces(session.ChatAsync(turns, sampling, ct))
            : Pieces(session.GenerateAsync(prompt!, sampling, ct));
        var first = await Generation.StartAsync(metrics.Measure(pieces, p => p.Token, EngineServer.Arrival(http)), ct).ConfigureAwait(false);
        var model = lease.Entry.Name;
        var answer = new System.Text.StringBuilder();
        var reasoning = new System.Text.StringBuilder();
        GeneratedToken? last = null;
        IReadOnlyList<ToolCall> calls = [];
        await using var disposeFirst = first;
        if (stream)
        {
            http.Response.ContentType = "application/x-ndjson";
            await http.Response.StartAsync(ct).ConfigureAwait(false);
        }
        if (first is not null)
        {
            {
                do
                {
                    var (r, a, token, pieceCalls) = first.Current;
                    if (think == false) r = ""; // asked not to show the reasoning
                    last = token;
                    if (pieceCalls.Count > 0) calls = pieceCalls;
                    if (stream)
                    {
                        if (r.Length == 0 && a.Length == 0 && token.FinishReason is null) continue;
                        if (token.FinishReason is null)
                            await WriteLineAsync(http, chat
                                ? new { model, created_at = DateTime.UtcNow, message = Message(a, r), done = false }
                                : (object)new { model, created_at = DateTime.UtcNow, response = a, thinking = r.Length > 0 ? r : null, done = false }, ct).ConfigureAwait(false);
                        else
                        {
                            answer.Append(a); reasoning.Append(r);
                            // As Ollama streams them: the calls in a chunk of their own before the final one.
                            if (calls.Count > 0)
                                await WriteLineAsync(http, new { model, created_at = DateTime.UtcNow, message = Message("", "", calls), done = false }, ct).ConfigureAwait(false);
                        }
                    }
                    else { answer.Append(a); reasoning.Append(r); }
                }
                while (await first.MoveNextAsync().ConfigureAwait(false));
            }
        }
        var timings = last?.Timings;
        var final = new Dictionary<string, object?>
        {
            ["model"] = model,
            ["created_at"] = DateTime.UtcNow,
        };
        if (chat) final["message"] = Message(answer.ToString(), reasoning.ToString(), stream ? [] : calls);
        else
        {
            final["response"] = answer.ToString();
            if (reasoning.Length > 0) final["thinking"] = reasoning.ToString();
        }
        final["done"] = true;
        final["done_reason"] = Generation.FinishReasonText(last?.FinishReason);
        final["total_duration"] = Nanoseconds(watch.Elapsed);
        final["load_duration"] = Nanoseconds(loadTime);
        final["prompt_eval_count"] = timings?.PromptTokens ?? 0;
        final["prompt_eval_duration"] = Nanoseconds(timings?.PromptTime ?? TimeSpan.Zero);
        final["eval_count"] = timings?.GeneratedTokens ?? 0;
        final["eval_duration"] = Nanoseconds(timings?.GenerationTime ?? TimeSpan.Zero);
        if (stream) await WriteLineAsync(http, final, ct).ConfigureAwait(false);
        else await Results.Json(final, ServerJson.Options).ExecuteAsync(http).ConfigureAwait(false);
    }

    /// <summary>Ollama's message; tool calls carry their arguments as an object (not JSON text, as OpenAI's do).</summary>
    static object Message(string content, string thinking, IReadOnlyList<ToolCall>? calls = null) => new
    {
        role = "assistant",
        content,
        thinking = thinking.Length > 0 ? thinking : null,
        tool_calls = calls is { Count: > 0 }
            ? calls.Select((c, i) => new { id = c.Id, function = new { index = i, name = c.Name, arguments = JsonSerializer.Deserialize<JsonElement>(c.Arguments) } }).ToArray()
            : null,
    };

    static async IAsyncEnumerable<(string, string, GeneratedToken, IReadOnlyList<ToolCall>)> Pieces(IAsyncEnumerable<ChatUpdate> updates)
    {
        await foreach (var u in updates.ConfigureAwait(false)) yield return (u.Reasoning, u.Answer, u.Token, u.ToolCalls);
    }

    static async IAsyncEnumerable<(string, string, GeneratedToken, IReadOnlyList<ToolCall>)> Pieces(IAsyncEnumerable<GeneratedToken> tokens)
    {
        await foreach (var t in tokens.ConfigureAwait(false)) yield return ("", t.IsEndOfGeneration ? "" : t.Text, t, []);
    }

    static long Nanoseconds(TimeSpan t) => t.Ticks * 100;

    static async Task WriteLineAsync(HttpContext http, object value, CancellationToken ct)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(value, ServerJson.Options);
        await http.Response.Body.WriteAsync(json, ct).ConfigureAwait(false);
        await http.Response.Body.WriteAsync("\n"u8.ToArray(), ct).ConfigureAwait(false);
        await http.Response.Body.FlushAsync(ct).ConfigureAwait(false);
    }

    static async Task ShowAsync(HttpContext http, ModelCatalog catalog)
    {
        var ct = http.RequestAborted;
        var body = await JsonRequest.ReadAsync(http.Request, ct).ConfigureAwait(false);
        var name = body.String("model") ?? body.String("name") ?? throw ApiError.BadRequest("'model' is required", "model");
        using var lease = await catalog.AcquireAsync(name, null, ct).ConfigureAwait(false);
        var info = lease.Model.Info;
        await Results.Json(new
        {
            license = "",
            modelfile = $"FROM {lease.Entry.Path}\n",
            parameters = "",
            template = info.ChatTemplate ?? "",
            details = Details(lease.Entry, lease.Model),
            model_info = new Dictionary<string, object>
            {
                ["general.architecture"] = info.Architecture,
                ["general.name"] = info.Name,
                ["general.parameter_count"] = info.ParameterCount,
                [$"{info.Architecture}.context_length"] = info.TrainedContextLength,
                [$"{info.Architecture}.embedding_length"] = info.EmbeddingLength,
                [$"{info.Architecture}.block_count"] = info.LayerCount,
            },
            capabilities = new[] { "completion", "embedding" },
            modified_at = lease.Entry.Modified,
        }, ServerJson.Options).ExecuteAsync(http).ConfigureAwait(false);
    }

    static async Task EmbedAsync(HttpContext http, ModelCatalog catalog, bool legacy)
    {
        var ct = http.RequestAborted;
        var body = await JsonRequest.ReadAsync(http.Request, ct).ConfigureAwait(false);
        var name = body.RequiredString("model");
        IReadOnlyList<string> inputs = legacy
            ? [body.String("prompt") ?? throw ApiError.BadRequest("'prompt' is required", "prompt")]
            : body.Strings("input", 2048) ?? throw ApiError.BadRequest("'input' is required", "input");
        if (inputs.Count == 0 || inputs.Any(s => s.Length == 0)) throw ApiError.BadRequest("an input is empty", legacy ? "prompt" : "input");
        var watch = System.Diagnostics.Stopwatch.StartNew();
        using var lease = await catalog.AcquireAsync(name, KeepAlive(body), ct).ConfigureAwait(false);
        IReadOnlyList<float[]> vectors;
        try { vectors = await lease.Model.EmbedAsync(inputs, cancellationToken: ct).ConfigureAwait(false); }
        catch (Exception e) when (Generation.Translate(e) is { } error) { throw error; }
        if (legacy) await Results.Json(new { embedding = vectors[0] }, ServerJson.Options).ExecuteAsync(http).ConfigureAwait(false);
        else await Results.Json(new
        {
            model = lease.Entry.Name,
            embeddings = vectors,
            total_duration = Nanoseconds(watch.Elapsed),
            prompt_eval_count = inputs.Sum(s => lease.Model.Tokenize(s).Count),
        }, ServerJson.Options).ExecuteAsync(http).ConfigureAwait(false);
    }
}
