using System.Net;
using System.Text.Json;

namespace Engine.Tests.Server;

/// <summary>The /api routes over HTTP: Ollama's shapes (NDJSON streams, nanosecond durations, model listings) and the
/// same greedy text as the OpenAI routes and the library.</summary>
public abstract class OllamaApiChecks(ServerFixture server)
{
    const string Prompt = "Once upon a time";

    [Fact]
    public async Task Root_version_and_tags_answer_as_Ollama_does()
    {
        (await server.Http.GetStringAsync("/")).Should().Be("Ollama is running");
        using (var head = await server.Http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/")))
            head.StatusCode.Should().Be(HttpStatusCode.OK);
        JsonDocument.Parse(await server.Http.GetStringAsync("/api/version")).RootElement.GetProperty("version").GetString().Should().NotBeNullOrEmpty();
        var tags = JsonDocument.Parse(await server.Http.GetStringAsync("/api/tags")).RootElement.GetProperty("models");
        var stories = tags.EnumerateArray().Single(t => t.GetProperty("name").GetString() == ServerFixture.ModelName);
        stories.GetProperty("size").GetInt64().Should().Be(new FileInfo(ServerFixture.ModelPath).Length);
        stories.GetProperty("details").GetProperty("format").GetString().Should().Be("gguf");
        tags.GetArrayLength().Should().Be(2);
        var health = JsonDocument.Parse(await server.Http.GetStringAsync("/health")).RootElement;
        health.GetProperty("status").GetString().Should().Be("ok");
        health.GetProperty("loading").GetArrayLength().Should().Be(0);
    }

    [Fact]
    public async Task Streamed_chat_is_ndjson_ending_with_counts_and_durations()
    {
        var lines = await server.PostLinesAsync("/api/chat", new
        {
            model = ServerFixture.ModelName,
            messages = new[] { new { role = "user", content = Prompt } },
            options = new { temperature = 0, num_predict = 12 },
        });
        lines.Should().HaveCountGreaterThan(1);
        lines[..^1].Should().OnlyContain(l => !l.GetProperty("done").GetBoolean());
        var last = lines[^1];
        last.GetProperty("done").GetBoolean().Should().BeTrue();
        last.GetProperty("eval_count").GetInt32().Should().BeInRange(1, 12);
        last.GetProperty("prompt_eval_count").GetInt32().Should().BeGreaterThan(0);
        last.GetProperty("total_duration").GetInt64().Should().BeGreaterThan(0, "durations are nanoseconds");
        var text = string.Concat(lines.Select(l => l.GetProperty("message").GetProperty("content").GetString()));
        text.Should().Be(await ServerFixture.LibraryChatAsync(Prompt, 12));
    }

    [Fact]
    public async Task Chat_without_streaming_is_one_object()
    {
        var (status, body) = await server.PostAsync("/api/chat", new
        {
            model = ServerFixture.ModelName + ":latest",
            messages = new[] { new { role = "user", content = Prompt } },
            stream = false,
            options = new { temperature = 0, num_predict = 12 },
        });
        status.Should().Be(200, body.ToString());
        body.GetProperty("done").GetBoolean().Should().BeTrue();
        body.GetProperty("message").GetProperty("content").GetString().Should().Be(await ServerFixture.LibraryChatAsync(Prompt, 12));
    }

    [Fact]
    public async Task Generate_raw_continues_the_prompt()
    {
        var (status, body) = await server.PostAsync("/api/generate", new
        {
            model = ServerFixture.ModelName,
            prompt = Prompt,
            raw = true,
            stream = false,
            options = new { temperature = 0, num_predict = 10 },
        });
        status.Should().Be(200, body.ToString());
        body.GetProperty("response").GetString().Should().Be(await ServerFixture.LibraryCompletionAsync(Prompt, 10));
        body.GetProperty("done_reason").GetString().Should().BeOneOf("length", "stop");
    }

    [Fact]
    public async Task Show_ps_and_embed_describe_the_loaded_model()
    {
        var (status, show) = await server.PostAsync("/api/show", new { model = ServerFixture.ModelName });
        status.Should().Be(200, show.ToString());
        show.GetProperty("model_info").GetProperty("general.architecture").GetString().Should().Be("llama");
        var ps = JsonDocument.Parse(await server.Http.GetStringAsync("/api/ps")).RootElement.GetProperty("models");
        ps.EnumerateArray().Select(m => m.GetProperty("name").GetString()).Should().Contain(ServerFixture.ModelName);
        var (s2, embed) = await server.PostAsync("/api/embed", new { model = ServerFixture.ModelName, input = new[] { "a", "b c" } });
        s2.Should().Be(200, embed.ToString());
        embed.GetProperty("embeddings").GetArrayLength().Should().Be(2);
        var (s3, legacy) = await server.PostAsync("/api/embeddings", new { model = ServerFixture.ModelName, prompt = "a" });
        s3.Should().Be(200, legacy.ToString());
        legacy.GetProperty("embedding").GetArrayLength().Should().Be(embed.GetProperty("embeddings")[0].GetArrayLength());
    }
}

/// <summary>Ollama's load and unload requests: an empty chat or generate loads the model, keep_alive 0 unloads it.</summary>
public class OllamaLoadUnloadTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task Empty_requests_load_and_keep_alive_zero_unloads()
    {
        async Task<string[]> Loaded() => JsonDocument.Parse(await server.Http.GetStringAsync("/api/ps")).RootElement.GetProperty("models")
            .EnumerateArray().Select(m => m.GetProperty("name").GetString()!).ToArray();
        var (s1, load) = await server.PostAsync("/api/chat", new { model = ServerFixture.ChatModelName, messages = Array.Empty<object>() });
        s1.Should().Be(200, load.ToString());
        load.GetProperty("done_reason").GetString().Should().Be("load");
        (await Loaded()).Should().Contain(ServerFixture.ChatModelName);
        var (s2, unload) = await server.PostAsync("/api/generate", new { model = ServerFixture.ChatModelName, keep_alive = 0 });
        s2.Should().Be(200, unload.ToString());
        unload.GetProperty("done_reason").GetString().Should().Be("unload");
        (await Loaded()).Should().NotContain(ServerFixture.ChatModelName);
    }
}

/// <summary><see cref="OllamaApiChecks"/> against the server on a loopback socket.</summary>
public sealed class OllamaApiTests(ServerFixture server) : OllamaApiChecks(server), IClassFixture<ServerFixture>;

/// <summary><see cref="OllamaApiChecks"/> against the server in memory (TestServer).</summary>
public sealed class OllamaApiInMemoryTests(InMemoryServerFixture server) : OllamaApiChecks(server), IClassFixture<InMemoryServerFixture>;
