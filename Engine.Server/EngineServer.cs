using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Prometheus;

namespace Engine.Server;

/// <summary>`engine serve`: the OpenAI- and Ollama-compatible HTTP server over the library's scheduler, on Kestrel.
/// Both API families share one port. Every refused request gets a JSON error in its family's shape and the server
/// keeps serving; a client that disconnects cancels its generation within one decode step.</summary>
internal sealed class EngineServer : IAsyncDisposable
{
    readonly WebApplication _app;
    readonly ModelCatalog _catalog;
    readonly ServerMetrics _metrics;
    int _inFlight;

    public ServerOptions Options { get; }
    public ModelCatalog Catalog => _catalog;

    /// <summary>The built-in chat page (wwwroot/index.html, embedded in the assembly).</summary>
    static readonly Lazy<byte[]> ChatPage = new(() =>
    {
        using var stream = typeof(EngineServer).Assembly.GetManifestResourceStream("Engine.Server.ChatPage.html")
            ?? throw new InvalidOperationException("the chat page is missing from Engine.Server.dll");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    });

    EngineServer(WebApplication app, ModelCatalog catalog, ServerMetrics metrics, ServerOptions options)
    {
        _app = app;
        _catalog = catalog;
        _metrics = metrics;
        Options = options;
    }

    /// <summary>When the request arrived, for the time-to-first-token measurement.</summary>
    public static System.Diagnostics.Stopwatch Arrival(HttpContext http) =>
        http.Items[typeof(EngineServer)] as System.Diagnostics.Stopwatch ?? System.Diagnostics.Stopwatch.StartNew();

    /// <summary>The address clients reach, after <see cref="StartAsync"/> (with the port Kestrel picked for port 0).</summary>
    public Uri Address { get; private set; } = new("http://127.0.0.1/");

    /// <summary>The server's services (tests reach an in-memory TestServer through them).</summary>
    internal IServiceProvider Services => _app.Services;

    /// <param name="options">What to serve and how.</param>
    /// <param name="configureHost">Changes to the web host before it is built: tests put an in-memory TestServer in
    /// place of Kestrel here.</param>
    public static EngineServer Create(ServerOptions options, Action<IWebHostBuilder>? configureHost = null)
    {
        if (options.Models.Count == 0) throw new ArgumentException("no model to serve: give --model or --models-dir");
        var catalog = new ModelCatalog(options);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            k.Limits.MaxRequestHeadersTotalSize = 64 * 1024;
            k.AddServerHeader = false;
            if (!IPAddress.TryParse(options.Host, out var ip))
                ip = options.Host == "localhost" ? IPAddress.Loopback : IPAddress.Any;
            k.Listen(ip, options.Port);
        });
        configureHost?.Invoke(builder.WebHost);
        if (options.CorsOrigins.Count > 0)
            builder.Services.AddCors(c => c.AddDefaultPolicy(p =>
            {
                if (options.CorsOrigins.Contains("*")) p.AllowAnyOrigin(); else p.WithOrigins([.. options.CorsOrigins]);
                p.AllowAnyHeader().AllowAnyMethod();
            }));
        var app = builder.Build();
        var metrics = new ServerMetrics(catalog);
        var server = new EngineServer(app, catalog, metrics, options);
        app.Use(server.GuardAsync);
        if (options.CorsOrigins.Count > 0) app.UseCors();
        app.Use(server.ErrorsAsync);
        // Ready to answer; models load on their first request, so "loading" names the ones loading now.
        app.MapGet("/health", () => Results.Json(new
        {
            status = catalog.All.Any(e => e.Loading) ? "loading" : "ok",
            loading = catalog.All.Where(e => e.Loading).Select(e => e.Name).ToArray(),
            loaded = catalog.All.Where(e => e.Loaded is not null).Select(e => e.Name).ToArray(),
        }, ServerJson.Options));
        app.MapMethods("/", ["HEAD"], () => Results.Ok());
        // Browsers get the chat page; Ollama clients, which probe / without asking for HTML, get Ollama's status text.
        app.MapGet("/", (HttpContext http) =>
        {
            if (!http.Request.Headers.Accept.ToString().Contains("text/html", StringComparison.OrdinalIgnoreCase))
                return Results.Text("Ollama is running", "text/plain");
            http.Response.Headers.ContentSecurityPolicy = "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'";
            http.Response.Headers.XContentTypeOptions = "nosniff";
            return Results.Bytes(ChatPage.Value, "text/html; charset=utf-8");
        });
        app.MapMetrics("/metrics", metrics.Registry);
        OpenAiApi.Map(app, catalog, metrics, options);
        OllamaApi.Map(app, catalog, metrics, options);
        app.MapFallback((HttpContext http) => throw new ApiError(404, $"no route {http.Request.Method} {http.Request.Path}"));
        return server;
    }

    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await _app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e) when (e.InnerException is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.AddressAlreadyInUse }
                                    || e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException($"port {Options.Port} on {Options.Host} is already in use: stop the other server or pick another with --port");
        }
        var feature = _app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
            .Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>();
        var bound = feature?.Addresses.FirstOrDefault() ?? $"http://{Options.Host}:{Options.Port}";
        Address = new Uri(bound.Replace("0.0.0.0", "127.0.0.1").Replace("[::]", "127.0.0.1"));
    }

    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _metrics.Dispose();
        _catalog.Dispose();
    }

    bool IsApi(PathString path) => path.StartsWithSegments("/v1") || path.StartsWithSegments("/api") || path.StartsWithSegments("/metrics");

    /// <summary>Host and Origin checks against DNS rebinding (loopback binds only), the API key, and the cap on
    /// requests at once; also the one log line per request.</summary>
    async Task GuardAsync(HttpContext http, RequestDelegate next)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        http.Items[typeof(EngineServer)] = watch;
        try
        {
            if (IsLoopbackBind() && !LocalHost(http.Request.Host.Host))
            {
                await WriteErrorAsync(http, new ApiError(403, $"host '{http.Request.Host}' is not this server's: a server bound to loopback only answers requests for localhost")).ConfigureAwait(false);
                return;
            }
            var origin = http.Request.Headers.Origin.ToString();
            if (origin.Length > 0 && !OriginAllowed(origin, http.Request.Host.Value))
            {
                await WriteErrorAsync(http, new ApiError(403, $"origin '{origin}' may not call this server: start it with --cors-origins {origin} to allow it")).ConfigureAwait(false);
                return;
            }
            if (Options.ApiKey is { } key && IsApi(http.Request.Path) && !HttpMethods.IsOptions(http.Request.Method) && !Authorized(http, key))
            {
                http.Response.Headers.WWWAuthenticate = "Bearer";
                await WriteErrorAsync(http, new ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", code: "invalid_api_key")).ConfigureAwait(false);
                return;
            }
            if (http.Request.ContentLength > Options.MaxRequestBodyBytes)
            {
                await WriteErrorAsync(http, new ApiError(413, $"the request body holds {http.Request.ContentLength} bytes, more than the {Options.MaxRequestBodyBytes} this server accepts")).ConfigureAwait(false);
                return;
            }
            bool counted = IsApi(http.Request.Path) && HttpMethods.IsPost(http.Request.Method);
            if (counted && Interlocked.Increment(ref _inFlight) > Options.MaxConcurrentRequests)
            {
                Interlocked.Decrement(ref _inFlight);
                http.Response.Headers.RetryAfter = "1";
                await WriteErrorAsync(http, new ApiError(503, $"the server is busy ({Options.MaxConcurrentRequests} requests at once): retry shortly")).ConfigureAwait(false);
                return;
            }
            try { await next(http).ConfigureAwait(false); }
            finally { if (counted) Interlocked.Decrement(ref _inFlight); }
        }
        finally
        {
            var route = (http.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "other";
            _metrics.Request(route, http.Response.StatusCode);
            // One line per request, key=value (logfmt), so log tools can read it.
            Options.Log?.WriteLine($"engine serve: request method={http.Request.Method} path={http.Request.Path} route={route} status={http.Response.StatusCode} " +
                $"ms={watch.Elapsed.TotalMilliseconds:0} client_gone={(http.RequestAborted.IsCancellationRequested ? "true" : "false")}");
        }
    }

    /// <summary>Turns refusals into JSON errors; a client that went away is not an error.</summary>
    async Task ErrorsAsync(HttpContext http, RequestDelegate next)
    {
        try
        {
            await next(http).ConfigureAwait(false);
        }
        catch (ApiError e)
        {
            await WriteErrorAsync(http, e).ConfigureAwait(false);
        }
        catch (Microsoft.AspNetCore.Http.BadHttpRequestException e)
        {
            await WriteErrorAsync(http, new ApiError(e.StatusCode, e.Message)).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            // The client disconnected: its generation is already cancelled.
        }
        catch (Exception e) when (Generation.Translate(e) is { } error)
        {
            await WriteErrorAsync(http, error).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Options.Log?.WriteLine($"engine serve: {http.Request.Method} {http.Request.Path} failed: {e}");
            await WriteErrorAsync(http, new ApiError(500, $"internal error: {e.GetType().Name}: {e.Message}")).ConfigureAwait(false);
        }
    }

    async Task WriteErrorAsync(HttpContext http, ApiError e)
    {
        if (http.Response.HasStarted)
        {
            // Mid-stream: the status is sent already; the error goes in the stream's own format, then it ends.
            var line = http.Request.Path.StartsWithSegments("/api")
                ? System.Text.Json.JsonSerializer.Serialize(new { error = e.Message }) + "\n"
                : "data: " + System.Text.Json.JsonSerializer.Serialize(new { error = new { message = e.Message, type = e.Type, param = e.Param, code = e.Code } }) + "\n\n";
            try { await http.Response.WriteAsync(line).ConfigureAwait(false); } catch (Exception) when (http.RequestAborted.IsCancellationRequested) { }
            return;
        }
        http.Response.StatusCode = e.Status;
        object body = http.Request.Path.StartsWithSegments("/api")
            ? new { error = e.Message }
            : new { error = new { message = e.Message, type = e.Type, param = e.Param, code = e.Code } };
        await Results.Json(body, ServerJson.Options, statusCode: e.Status).ExecuteAsync(http).ConfigureAwait(false);
    }

    bool IsLoopbackBind() => Options.Host is "127.0.0.1" or "localhost" or "::1" || (IPAddress.TryParse(Options.Host, out var ip) && IPAddress.IsLoopback(ip));

    static bool LocalHost(string host) => host is "localhost" or "127.0.0.1" or "[::1]" or "::1" || host.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase);

    bool OriginAllowed(string origin, string? host)
    {
        if (Options.CorsOrigins.Contains("*") || Options.CorsOrigins.Contains(origin, StringComparer.OrdinalIgnoreCase)) return true;
        // Same origin: the page was served from the address the request is sent to (any bind address).
        if (Uri.TryCreate(origin, UriKind.Absolute, out var same) && string.Equals(same.Authority, host, StringComparison.OrdinalIgnoreCase)) return true;
        // The server's own pages (same origin) may always call it.
        return Uri.TryCreate(origin, UriKind.Absolute, out var uri) && LocalHost(uri.Host) && IsLoopbackBind()
            || Uri.TryCreate(origin, UriKind.Absolute, out uri) && string.Equals(uri.Authority, Address.Authority, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Constant-time comparison of the bearer token, so its bytes cannot be guessed from timing.</summary>
    static bool Authorized(HttpContext http, string key)
    {
        var header = http.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return false;
        var given = Encoding.UTF8.GetBytes(header[7..].Trim());
        var expected = Encoding.UTF8.GetBytes(key);
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(given), SHA256.HashData(expected));
    }
}
