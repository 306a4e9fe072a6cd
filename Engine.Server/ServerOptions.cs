namespace Engine.Server;

/// <summary>How `engine serve` runs: which models, where it listens, who may call it and how models are loaded.</summary>
internal sealed record ServerOptions
{
    /// <summary>Model files or folders to serve; each is named by its file or folder name without extension.</summary>
    public IReadOnlyList<string> Models { get; init; } = [];
    /// <summary>Address to bind (default loopback only).</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>Port (default Ollama's, so Ollama clients work unchanged); 0 picks a free one (tests).</summary>
    public int Port { get; init; } = 11434;
    /// <summary>Every API route requires <c>Authorization: Bearer</c> with this key when set.</summary>
    public string? ApiKey { get; init; }
    /// <summary>Origins allowed cross-origin access; "*" allows any. None by default.</summary>
    public IReadOnlyList<string> CorsOrigins { get; init; } = [];
    /// <summary>What each model is loaded with (device, threads, context, KV cache).</summary>
    public ModelLoadOptions LoadOptions { get; init; } = new();
    /// <summary>How long an unused model stays loaded (Ollama's keep_alive default); negative keeps it forever.</summary>
    public TimeSpan KeepAlive { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>Bytes the loaded models may take together; loading one more first unloads idle models (the least
    /// recently used first) until it fits. Null: 90% of the memory available to the process.</summary>
    public long? ModelMemoryLimit { get; init; }
    /// <summary>Largest request body accepted.</summary>
    public long MaxRequestBodyBytes { get; init; } = 8 << 20;
    /// <summary>Requests generating or waiting at once; more get 503 with Retry-After.</summary>
    public int MaxConcurrentRequests { get; init; } = 256;
    /// <summary>Most choices one request may ask for (OpenAI's n).</summary>
    public int MaxChoices { get; init; } = 8;
    /// <summary>Tests: rewrites every Ollama chat or generate request's options before it runs (a grammar that scripts the model's
    /// reply, where the API itself has no field for one, such as a tool call over Ollama's API). Null in production.</summary>
    internal Func<GenerateOptions, GenerateOptions>? AdjustGeneration { get; init; }
    /// <summary>Where log lines go (one per request); null for none.</summary>
    public TextWriter? Log { get; init; }
}
