using System.Text.Json;

namespace Engine.Server;

/// <summary>A server-sent-event stream: each event one <c>data: {json}</c> line and a blank line, flushed at once.</summary>
internal sealed class ServerSentEvents
{
    readonly HttpResponse _response;
    ServerSentEvents(HttpResponse response) => _response = response;

    public static async Task<ServerSentEvents> StartAsync(HttpContext http)
    {
        var r = http.Response;
        r.StatusCode = 200;
        r.ContentType = "text/event-stream; charset=utf-8";
        r.Headers.CacheControl = "no-cache";
        r.Headers["X-Accel-Buffering"] = "no";
        await r.StartAsync(http.RequestAborted).ConfigureAwait(false);
        return new ServerSentEvents(r);
    }

    public async Task WriteAsync(object value, CancellationToken cancellationToken)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(value, ServerJson.Options);
        await _response.Body.WriteAsync("data: "u8.ToArray(), cancellationToken).ConfigureAwait(false);
        await _response.Body.WriteAsync(json, cancellationToken).ConfigureAwait(false);
        await _response.Body.WriteAsync("\n\n"u8.ToArray(), cancellationToken).ConfigureAwait(false);
        await _response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task DoneAsync(CancellationToken cancellationToken)
    {
        await _response.Body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), cancellationToken).ConfigureAwait(false);
        await _response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>The JSON settings of every answer: property names as written, nulls kept (OpenAI's shapes have them).</summary>
internal static class ServerJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = null,
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.Never,
        // Text as the model wrote it (quotes and apostrophes unescaped), as OpenAI's and Ollama's servers send it.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
