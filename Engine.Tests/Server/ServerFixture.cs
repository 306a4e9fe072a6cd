using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Engine.Server;
using Engine.Tests.Support;

namespace Engine.Tests.Server;

/// <summary>A running `engine serve` on a free loopback port, serving the shipped stories260K model (and the same file
/// under a second name), shared by the server tests of one class.</summary>
public class ServerFixture : IAsyncLifetime
{
    public static readonly string ModelPath = TestPaths.Repo("models", "stories260K.gguf");
    public const string ModelName = "stories260K";
    /// <summary>A tiny Qwen2-shaped model with Qwen3's chat template (think tags, enable_thinking), shipped with the tests.</summary>
    public static readonly string ChatModelPath = TestPaths.Repo("Engine.Tests", "Fixtures", "qwen2-tiny-chat-Q8_0.gguf");
    public const string ChatModelName = "qwen2-tiny-chat-Q8_0";

    internal EngineServer Server { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;
    public Uri Address => Server.Address;
    public StringWriter Log { get; } = new();

    internal static ServerOptions Options(TextWriter? log = null) => new()
    {
        Models = [ModelPath, ChatModelPath],
        Port = 0,
        LoadOptions = new ModelLoadOptions { Threads = 2, ContextLength = 256, KvCacheType = KvCacheType.F32 },
        Log = log is null ? null : TextWriter.Synchronized(log),
    };

    public virtual async Task InitializeAsync()
    {
        Server = EngineServer.Create(Options(Log));
        await Server.StartAsync();
        Http = new HttpClient { BaseAddress = Server.Address, Timeout = TimeSpan.FromSeconds(60) };
    }

    /// <summary>For subclasses that start the server another way.</summary>
    private protected void Started(EngineServer server, HttpClient http) { Server = server; Http = http; }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
    }

    public async Task<(int Status, JsonElement Body)> PostAsync(string path, object body)
    {
        using var response = await Http.PostAsync(path, new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    public async Task<(int Status, JsonElement Body)> PostRawAsync(string path, string body, string contentType = "application/json")
    {
        using var response = await Http.PostAsync(path, new StringContent(body, Encoding.UTF8, contentType));
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>A server-sent-event stream's JSON events, up to <c>data: [DONE]</c> (which must come).</summary>
    public async Task<List<JsonElement>> PostEventsAsync(string path, object body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json") };
        using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        ((int)response.StatusCode).Should().Be(200, await ErrorText(response));
        response.Content.Headers.ContentType!.MediaType.Should().Be("text/event-stream");
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var events = new List<JsonElement>();
        bool done = false;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.Length == 0) continue;
            line.Should().StartWith("data: ");
            var data = line["data: ".Length..];
            if (data == "[DONE]") { done = true; break; }
            events.Add(JsonDocument.Parse(data).RootElement.Clone());
        }
        done.Should().BeTrue("a stream ends with data: [DONE]");
        (await reader.ReadToEndAsync()).Trim().Should().BeEmpty("nothing follows [DONE]");
        return events;
    }

    /// <summary>An NDJSON stream's lines (Ollama).</summary>
    public async Task<List<JsonElement>> PostLinesAsync(string path, object body)
    {
        using var response = await Http.PostAsync(path, new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"));
        ((int)response.StatusCode).Should().Be(200, await ErrorText(response));
        response.Content.Headers.ContentType!.MediaType.Should().Be("application/x-ndjson");
        var lines = (await response.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return [.. lines.Select(l => JsonDocument.Parse(l).RootElement.Clone())];
    }

    static async Task<string> ErrorText(HttpResponseMessage r) => r.IsSuccessStatusCode ? "" : await r.Content.ReadAsStringAsync();

    /// <summary>The model's greedy continuation through the library directly: what the server must return.</summary>
    public static async Task<string> LibraryChatAsync(string user, int maxTokens)
    {
        using var model = Model.Load(ModelPath, new ModelLoadOptions { Threads = 2, ContextLength = 256, KvCacheType = KvCacheType.F32 });
        using var session = model.CreateSession();
        var text = new StringBuilder();
        await foreach (var u in session.ChatAsync([new ChatTurn("user", user)], GenerateOptions.Greedy with { MaxTokens = maxTokens }))
            text.Append(u.Answer);
        return text.ToString();
    }

    public static async Task<string> LibraryCompletionAsync(string prompt, int maxTokens)
    {
        using var model = Model.Load(ModelPath, new ModelLoadOptions { Threads = 2, ContextLength = 256, KvCacheType = KvCacheType.F32 });
        using var session = model.CreateSession();
        var text = new StringBuilder();
        await foreach (var t in session.GenerateAsync(prompt, GenerateOptions.Greedy with { MaxTokens = maxTokens }))
            if (!t.IsEndOfGeneration) text.Append(t.Text);
        return text.ToString();
    }
}

/// <summary>The same server in memory: ASP.NET Core's TestServer (Microsoft.AspNetCore.Mvc.Testing) in place of Kestrel,
/// its HttpClient in place of a socket. The route, error and disconnect tests run against both.</summary>
public sealed class InMemoryServerFixture : ServerFixture
{
    public override async Task InitializeAsync()
    {
        var server = EngineServer.Create(Options(Log), host => Microsoft.AspNetCore.TestHost.WebHostBuilderExtensions.UseTestServer(host));
        await server.StartAsync();
        var testServer = (Microsoft.AspNetCore.TestHost.TestServer)server.Services.GetService(typeof(Microsoft.AspNetCore.Hosting.Server.IServer))!;
        var http = testServer.CreateClient();
        http.Timeout = TimeSpan.FromSeconds(60);
        Started(server, http);
    }
}
