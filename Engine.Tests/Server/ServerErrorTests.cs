using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Engine.Server;

namespace Engine.Tests.Server;

/// <summary>Bad requests get a 4xx in their API family's error shape, and the server keeps serving after each.</summary>
public abstract class ServerErrorChecks(ServerFixture server)
{
    static object Chat(object? maxTokens = null, string model = ServerFixture.ModelName) => new
    {
        model,
        messages = new[] { new { role = "user", content = "hi" } },
        max_tokens = maxTokens ?? 4,
    };

    async Task StillServes()
    {
        var (status, body) = await server.PostAsync("/v1/chat/completions", Chat());
        status.Should().Be(200, body.ToString());
    }

    static void OpenAiError(JsonElement body, string? param = null)
    {
        var error = body.GetProperty("error");
        error.GetProperty("message").GetString().Should().NotBeNullOrEmpty();
        error.GetProperty("type").GetString().Should().NotBeNullOrEmpty();
        if (param is not null) error.GetProperty("param").GetString().Should().Be(param);
    }

    [Theory]
    [InlineData("{not json", null)]
    [InlineData("[1,2]", null)]
    [InlineData("{\"model\":\"stories260K\"}", "messages")]
    [InlineData("{\"model\":\"stories260K\",\"messages\":[]}", "messages")]
    [InlineData("{\"model\":\"stories260K\",\"messages\":\"hi\"}", "messages")]
    [InlineData("{\"model\":\"stories260K\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "messages[0].role")]
    [InlineData("{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":\"ten\"}", "max_tokens")]
    [InlineData("{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":-1}", "temperature")]
    [InlineData("{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":1000}", "n")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model")]
    [InlineData("{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}", "max_tokens")]
    [InlineData("{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_p\":0}", "top_p")]
    [InlineData("{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":21,\"logprobs\":true}", "top_logprobs")]
    [InlineData("{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logit_bias\":{\"5\":10}}", "logit_bias")]
    [InlineData("{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"]}", "stop")]
    public async Task Malformed_chat_requests_are_400_with_the_parameter(string json, string? param)
    {
        var (status, body) = await server.PostRawAsync("/v1/chat/completions", json);
        status.Should().Be(400, body.ToString());
        OpenAiError(body, param);
        await StillServes();
    }

    [Fact]
    public async Task A_stop_string_longer_than_the_limit_is_400()
    {
        var (status, body) = await server.PostAsync("/v1/chat/completions", new
        {
            model = ServerFixture.ModelName,
            messages = new[] { new { role = "user", content = "x" } },
            stop = new[] { new string('s', 300) },
        });
        status.Should().Be(400, body.ToString());
        body.GetProperty("error").GetProperty("param").GetString().Should().Be("stop");
        await StillServes();
    }

    [Fact]
    public async Task Unknown_model_is_404_naming_the_served_ones()
    {
        var (status, body) = await server.PostAsync("/v1/chat/completions", Chat(model: "gpt-17"));
        status.Should().Be(404);
        body.GetProperty("error").GetProperty("message").GetString().Should().Contain(ServerFixture.ModelName);
        var (s2, b2) = await server.PostAsync("/api/chat", new { model = "gpt-17", messages = new[] { new { role = "user", content = "x" } } });
        s2.Should().Be(404);
        b2.GetProperty("error").ValueKind.Should().Be(JsonValueKind.String, "Ollama's errors are a plain string");
        await StillServes();
    }

    [Fact]
    public async Task A_prompt_longer_than_the_context_is_400_with_both_counts()
    {
        var longText = string.Join(' ', Enumerable.Repeat("the little dog ran to the park", 200));
        var (status, body) = await server.PostAsync("/v1/chat/completions", new { model = ServerFixture.ModelName, messages = new[] { new { role = "user", content = longText } } });
        status.Should().Be(400, body.ToString());
        var message = body.GetProperty("error").GetProperty("message").GetString()!;
        message.Should().Contain("256").And.MatchRegex("holds \\d+ tokens");
        body.GetProperty("error").GetProperty("code").GetString().Should().Be("context_length_exceeded");
        await StillServes();
    }

    [Fact]
    public async Task Ollama_num_ctx_sizes_the_request_and_a_prompt_beyond_it_is_400_with_both_counts()
    {
        var text = string.Join(' ', Enumerable.Repeat("the little dog ran", 12));
        var (status, body) = await server.PostAsync("/api/chat", new
        {
            model = ServerFixture.ModelName,
            messages = new[] { new { role = "user", content = text } },
            stream = false,
            options = new { num_ctx = 32, num_predict = 2 },
        });
        status.Should().Be(400, body.ToString());
        body.GetProperty("error").GetString().Should().Contain("32").And.MatchRegex("holds \\d+ tokens");
        var (ok, _) = await server.PostAsync("/api/chat", new
        {
            model = ServerFixture.ModelName,
            messages = new[] { new { role = "user", content = text } },
            stream = false,
            options = new { num_ctx = 200, num_predict = 2 },
        });
        ok.Should().Be(200);
    }

    [Fact]
    public async Task Invalid_utf8_is_400()
    {
        using var content = new ByteArrayContent([(byte)'{', (byte)'"', 0xC3, 0x28, (byte)'"', (byte)':', (byte)'1', (byte)'}']);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await server.Http.PostAsync("/v1/chat/completions", content);
        ((int)response.StatusCode).Should().Be(400);
        await StillServes();
    }

    [Fact]
    public async Task Oversized_bodies_are_refused()
    {
        var huge = new string('a', 9 << 20);
        // Expect: 100-continue lets the refusal arrive before the body is sent (a client that sends it anyway may see
        // the connection closed instead, after the 413).
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(huge, Encoding.UTF8, "application/json") };
        request.Headers.ExpectContinue = true;
        using var response = await server.Http.SendAsync(request);
        ((int)response.StatusCode).Should().Be(413);
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("message").GetString().Should().Contain("bytes");
        await StillServes();
    }

    [Fact]
    public async Task Unknown_routes_are_404_json()
    {
        using var response = await server.Http.GetAsync("/v1/nothing");
        response.StatusCode.Should().Be(HttpStatusCode.NotFound);
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("message").GetString().Should().Contain("/v1/nothing");
    }

    [Fact]
    public async Task A_foreign_host_header_is_refused_on_a_loopback_bind()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Host = "attacker.example";
        using var response = await server.Http.SendAsync(request);
        response.StatusCode.Should().Be(HttpStatusCode.Forbidden);
        using var cross = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        cross.Headers.Add("Origin", "https://attacker.example");
        using var crossResponse = await server.Http.SendAsync(cross);
        crossResponse.StatusCode.Should().Be(HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task A_client_that_disconnects_cancels_its_generation()
    {
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent(JsonSerializer.Serialize(new
            {
                model = ServerFixture.ModelName,
                messages = new[] { new { role = "user", content = "Once" } },
                stream = true,
                max_tokens = 100000,
            }), Encoding.UTF8, "application/json"),
        })
        using (var response = await server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            response.StatusCode.Should().Be(HttpStatusCode.OK);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            (await reader.ReadLineAsync()).Should().StartWith("data: ");
        } // disconnects here
        var model = server.Server.Catalog.Find(ServerFixture.ModelName).Loaded!;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (model.KvCacheStatistics.RunningRequests > 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
        model.KvCacheStatistics.RunningRequests.Should().Be(0, "the sequence of a client that left is cancelled");
        await StillServes();
    }
}

/// <summary>Server options that need a server of their own: the API key and a port already in use.</summary>
public class ServerSecurityTests
{
    [Fact]
    public async Task With_an_api_key_every_api_route_needs_it_and_health_does_not()
    {
        await using var server = EngineServer.Create(ServerFixture.Options() with { ApiKey = "s3cret" });
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Address };
        (await http.GetAsync("/v1/models")).StatusCode.Should().Be(HttpStatusCode.Unauthorized);
        (await http.GetAsync("/api/tags")).StatusCode.Should().Be(HttpStatusCode.Unauthorized);
        (await http.GetAsync("/health")).StatusCode.Should().Be(HttpStatusCode.OK);
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "wrong");
        (await http.GetAsync("/v1/models")).StatusCode.Should().Be(HttpStatusCode.Unauthorized);
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "s3cret");
        (await http.GetAsync("/v1/models")).StatusCode.Should().Be(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Requests_beyond_the_limit_get_503_with_retry_after()
    {
        // A context of 2048 tokens keeps the first stream generating for seconds while the second arrives.
        var options = ServerFixture.Options();
        await using var server = EngineServer.Create(options with { MaxConcurrentRequests = 1, LoadOptions = options.LoadOptions with { ContextLength = 2048 } });
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Address };
        var body = JsonSerializer.Serialize(new { model = ServerFixture.ModelName, messages = new[] { new { role = "user", content = "Once" } }, stream = true, max_tokens = 100000 });
        using var first = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") },
            HttpCompletionOption.ResponseHeadersRead);
        first.StatusCode.Should().Be(HttpStatusCode.OK);
        using var second = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        second.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable);
        second.Headers.RetryAfter.Should().NotBeNull();
    }

    [Fact]
    public async Task Loading_a_model_that_does_not_fit_unloads_the_idle_one()
    {
        // A limit that holds either model but not both.
        long limit = Math.Max(new FileInfo(ServerFixture.ModelPath).Length, new FileInfo(ServerFixture.ChatModelPath).Length) + 4096;
        await using var server = EngineServer.Create(ServerFixture.Options() with { ModelMemoryLimit = limit });
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Address };
        async Task Chat(string model)
        {
            using var r = await http.PostAsync("/api/chat", new StringContent(JsonSerializer.Serialize(new
                { model, messages = new[] { new { role = "user", content = "Hi" } }, stream = false, options = new { num_predict = 2 } }), Encoding.UTF8, "application/json"));
            r.StatusCode.Should().Be(HttpStatusCode.OK, await r.Content.ReadAsStringAsync());
        }
        async Task<string[]> Loaded() => JsonDocument.Parse(await http.GetStringAsync("/api/ps")).RootElement.GetProperty("models")
            .EnumerateArray().Select(m => m.GetProperty("name").GetString()!).ToArray();
        await Chat(ServerFixture.ModelName);
        (await Loaded()).Should().Equal(ServerFixture.ModelName);
        await Chat(ServerFixture.ChatModelName);
        (await Loaded()).Should().Equal(ServerFixture.ChatModelName);
    }

    [Fact]
    public async Task A_port_in_use_is_one_error_naming_it()
    {
        await using var first = EngineServer.Create(ServerFixture.Options());
        await first.StartAsync();
        await using var second = EngineServer.Create(ServerFixture.Options() with { Port = first.Address.Port });
        var act = () => second.StartAsync();
        (await act.Should().ThrowAsync<InvalidOperationException>()).Which.Message.Should().Contain(first.Address.Port.ToString()).And.Contain("--port");
    }
}

/// <summary><see cref="ServerErrorChecks"/> against the server on a loopback socket.</summary>
public sealed class ServerErrorTests(ServerFixture server) : ServerErrorChecks(server), IClassFixture<ServerFixture>;

/// <summary><see cref="ServerErrorChecks"/> against the server in memory (TestServer).</summary>
public sealed class ServerErrorInMemoryTests(InMemoryServerFixture server) : ServerErrorChecks(server), IClassFixture<InMemoryServerFixture>;
