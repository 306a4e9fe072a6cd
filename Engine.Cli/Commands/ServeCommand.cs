using Engine.Server;

namespace Engine.Cli.Commands;

/// <summary>`engine serve`: the OpenAI- and Ollama-compatible HTTP server (Engine.Server) on one port. A thin layer:
/// it reads the command line into <see cref="ServerOptions"/>, starts the server, and stops it on Ctrl+C.</summary>
public static class ServeCommand
{
    static readonly string Help = """
        usage: engine serve [--model M ...] [--models-dir D] [--host H] [--port P] [--api-key K | --api-key-file F]
                            [--cors-origins O1,O2] [--keep-alive 5m] [--parallel N] [--ctx N] [--kv-type T] [--kv-budget S]
                            [--device D] [--threads N] [--chat-template-file F | --template NAME]
                            [--control-vector F] [--control-vector-scaled F S] [--control-vector-layer-range A B]
        Serves the OpenAI API (/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models) and the Ollama API
        (/api/chat, /api/generate, /api/embed, /api/tags, /api/show, /api/ps, /api/version) on one port. Each
        conversation may use the model's whole trained context unless --ctx says less; the KV cache they share is
        sized by --kv-budget (default: --parallel full contexts, capped by the free memory) and stated at load.
          --model M        a model file or folder; repeat for several. Each is named by its file or folder name
                           without extension. Without --model and --models-dir, the stories260K model that comes with engine.
          --models-dir D   every .gguf file and model folder in D
          --host H         address to bind (default 127.0.0.1, this machine only)
          --port P         port (default 11434, Ollama's, so Ollama clients work unchanged)
          --api-key K      require 'Authorization: Bearer K' on every API route (--api-key-file F reads it from F)
          --cors-origins   origins allowed cross-origin access, comma-separated, or * for any (default none)
          --keep-alive D   how long an unused model stays loaded: 5m (default), 1h, 30s, or -1 to keep it

        """ + ModelArguments.TemplateHelp + ModelArguments.ControlVectorHelp + ModelArguments.KvHelp.Replace("(default: the model's trained context, at most 4096)", "(default: the model's whole trained context)") + ModelArguments.GptqHelp;

    static readonly HashSet<string> Repeatable = ["model", "m", .. ModelArguments.Repeatable];

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, ModelArguments.Flags, Repeatable, ModelArguments.Pairs);
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        if (cl.Positionals.Count > 0) throw new UsageException($"serve takes no positional argument, got '{cl.Positionals[0]}' (use --model)");
        var models = new List<string>(cl.Strings("model", "m"));
        if (cl.String("models-dir") is { } dir)
        {
            if (!Directory.Exists(dir)) throw new UsageException($"no such folder: {dir}");
            models.AddRange(Directory.EnumerateFiles(dir, "*.gguf").Order(StringComparer.Ordinal));
            models.AddRange(Directory.EnumerateDirectories(dir).Where(d => File.Exists(Path.Combine(d, "config.json"))).Order(StringComparer.Ordinal));
            if (models.Count == 0) throw new UsageException($"{dir} holds no .gguf file or model folder");
        }
        if (models.Count == 0) models.Add(EntryPoint.DefaultModelPath());
        for (int i = 0; i < models.Count; i++) models[i] = ModelArguments.Resolve(models[i]);
        var template = cl.String("template");
        if (template is not null && Engine.Chat.ChatTemplates.ByName(template) is null)
            throw new UsageException($"unknown template '{template}': use {Engine.Chat.ChatTemplates.Names}");
        var apiKey = cl.String("api-key");
        if (cl.String("api-key-file") is { } keyFile)
        {
            if (apiKey is not null) throw new UsageException("give --api-key or --api-key-file, not both");
            if (!File.Exists(keyFile)) throw new UsageException($"no such file: {keyFile}");
            apiKey = File.ReadAllText(keyFile).Trim();
            if (apiKey.Length == 0) throw new UsageException($"{keyFile} is empty");
        }
        var options = new ServerOptions
        {
            Models = models,
            Host = cl.String("host") ?? "127.0.0.1",
            Port = cl.Int("port", 11434, 0, 65535),
            ApiKey = apiKey,
            CorsOrigins = (cl.String("cors-origins") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            KeepAlive = KeepAlive(cl.String("keep-alive")),
            // A server's default context is the model's whole trained context (bounded by the KV budget), stated at load.
            LoadOptions = cl.Has("ctx") || cl.Has("c") ? ModelArguments.LoadOptions(cl, template)
                : ModelArguments.LoadOptions(cl, template) with { ContextLength = ModelLoadOptions.TrainedContext },
            Log = Console.Error,
        };
        cl.RejectUnknown();
        return RunAsync(options).GetAwaiter().GetResult();
    }

    static TimeSpan KeepAlive(string? text)
    {
        if (text is null) return TimeSpan.FromMinutes(5);
        var t = text.Trim();
        if (t.StartsWith('-')) return TimeSpan.FromSeconds(-1);
        double scale = t.EndsWith('s') ? 1 : t.EndsWith('m') ? 60 : t.EndsWith('h') ? 3600 : 1;
        if (!double.TryParse(t.TrimEnd('s', 'm', 'h'), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double n) || n < 0)
            throw new UsageException($"--keep-alive must be a duration such as 5m, 1h, 30s or -1, got '{text}'");
        return TimeSpan.FromSeconds(n * scale);
    }

    static async Task<int> RunAsync(ServerOptions options)
    {
        await using var server = EngineServer.Create(options);
        await server.StartAsync().ConfigureAwait(false);
        var log = Console.Error;
        log.WriteLine($"engine serve: listening on {server.Address} (OpenAI API under /v1, Ollama API under /api)");
        log.WriteLine($"engine serve: models: {string.Join(", ", server.Catalog.All.Select(e => e.Name))} (each loaded on its first request)");
        var ctx = options.LoadOptions.ContextLength;
        log.WriteLine("engine serve: context: " + (ctx > 0 ? $"{ctx} tokens per conversation (--ctx)" : "each model's whole trained context per conversation (--ctx caps it)") +
            "; KV cache: " + (options.LoadOptions.KvCacheBytes > 0 ? $"{options.LoadOptions.KvCacheBytes >> 20} MiB per model (--kv-budget)" : $"{options.LoadOptions.ParallelSequences} full contexts per model, capped by free memory (--kv-budget sets it)") +
            $", {options.LoadOptions.KvCacheType}; each model states its sizes when it loads");
        if (options.ApiKey is null && !IsLoopback(options.Host))
            log.WriteLine($"engine serve: warning: bound to {options.Host} without --api-key: anyone who can reach this address can use the server");
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
        try { await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false); }
        catch (OperationCanceledException) { }
        log.WriteLine("engine serve: stopping");
        return 0;
    }

    static bool IsLoopback(string host) => host is "localhost" || (System.Net.IPAddress.TryParse(host, out var ip) && System.Net.IPAddress.IsLoopback(ip));
}
