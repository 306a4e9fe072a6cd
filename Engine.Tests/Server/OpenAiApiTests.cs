using Engine.Server;
using System.Text;
using System.Text.Json;

namespace Engine.Tests.Server;

/// <summary>The /v1 routes over HTTP against a running server: shapes, usage, streams, and the text the library itself
/// generates for the same request (greedy, so it must match token for token).</summary>
public abstract class OpenAiApiChecks(ServerFixture server)
{
    const string Prompt = "Once upon a time";

    [Fact]
    public async Task Models_are_listed_by_file_name()
    {
        var list = JsonDocument.Parse(await server.Http.GetStringAsync("/v1/models")).RootElement;
        list.GetProperty("object").GetString().Should().Be("list");
        var ids = list.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        ids.Should().Equal(ServerFixture.ChatModelName, ServerFixture.ModelName);
        list.GetProperty("data")[0].GetProperty("object").GetString().Should().Be("model");
        var one = JsonDocument.Parse(await server.Http.GetStringAsync($"/v1/models/{ServerFixture.ModelName}")).RootElement;
        one.GetProperty("id").GetString().Should().Be(ServerFixture.ModelName);
    }

    [Fact]
    public async Task Chat_completion_is_the_librarys_greedy_reply_with_usage()
    {
        var (status, body) = await server.PostAsync("/v1/chat/completions", new
        {
            model = ServerFixture.ModelName,
            messages = new[] { new { role = "user", content = Prompt } },
            max_tokens = 12,
            temperature = 0,
        });
        status.Should().Be(200, body.ToString());
        body.GetProperty("object").GetString().Should().Be("chat.completion");
        var choice = body.GetProperty("choices")[0];
        choice.GetProperty("message").GetProperty("role").GetString().Should().Be("assistant");
        var content = choice.GetProperty("message").GetProperty("content").GetString();
        content.Should().Be(await ServerFixture.LibraryChatAsync(Prompt, 12));
        var usage = body.GetProperty("usage");
        usage.GetProperty("completion_tokens").GetInt32().Should().BeInRange(1, 12);
        usage.GetProperty("prompt_tokens").GetInt32().Should().BeGreaterThan(0);
        usage.GetProperty("total_tokens").GetInt32().Should().Be(usage.GetProperty("prompt_tokens").GetInt32() + usage.GetProperty("completion_tokens").GetInt32());
        if (usage.GetProperty("completion_tokens").GetInt32() == 12) choice.GetProperty("finish_reason").GetString().Should().Be("length");
    }

    [Fact]
    public async Task Streamed_chat_carries_the_same_text_then_usage_then_done()
    {
        var request = new
        {
            model = ServerFixture.ModelName,
            messages = new[] { new { role = "user", content = Prompt } },
            max_tokens = 12,
            temperature = 0,
            stream = true,
            stream_options = new { include_usage = true },
        };
        var events = await server.PostEventsAsync("/v1/chat/completions", request);
        events.Should().HaveCountGreaterThan(2);
        events[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString().Should().Be("assistant");
        var text = new StringBuilder();
        string? finish = null;
        foreach (var e in events[..^1])
        {
            e.GetProperty("object").GetString().Should().Be("chat.completion.chunk");
            var choice = e.GetProperty("choices")[0];
            if (choice.GetProperty("delta").TryGetProperty("content", out var c)) text.Append(c.GetString());
            if (choice.GetProperty("finish_reason").ValueKind == JsonValueKind.String) finish = choice.GetProperty("finish_reason").GetString();
        }
        finish.Should().NotBeNull("the last choice chunk names the finish reason");
        text.ToString().Should().Be(await ServerFixture.LibraryChatAsync(Prompt, 12));
        var last = events[^1];
        last.GetProperty("choices").GetArrayLength().Should().Be(0, "the usage chunk has no choices");
        last.GetProperty("usage").GetProperty("completion_tokens").GetInt32().Should().BeInRange(1, 12);
    }

    [Fact]
    public async Task Several_choices_come_back_indexed()
    {
        var (status, body) = await server.PostAsync("/v1/chat/completions", new
        {
            model = ServerFixture.ModelName,
            messages = new[] { new { role = "user", content = Prompt } },
            max_tokens = 6,
            n = 3,
            seed = 7,
        });
        status.Should().Be(200, body.ToString());
        body.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("index").GetInt32()).Should().Equal(0, 1, 2);
        body.GetProperty("usage").GetProperty("completion_tokens").GetInt32().Should().BeInRange(3, 18);
    }

    [Fact]
    public async Task Log_probabilities_are_returned_when_asked()
    {
        var (status, body) = await server.PostAsync("/v1/chat/completions", new
        {
            model = ServerFixture.ModelName,
            messages = new[] { new { role = "user", content = Prompt } },
            max_tokens = 4,
            temperature = 0,
            logprobs = true,
            top_logprobs = 3,
        });
        status.Should().Be(200, body.ToString());
        var content = body.GetProperty("choices")[0].GetProperty("logprobs").GetProperty("content");
        content.GetArrayLength().Should().BeGreaterThan(0);
        var first = content[0];
        first.GetProperty("logprob").GetSingle().Should().BeLessThanOrEqualTo(0);
        first.GetProperty("top_logprobs").GetArrayLength().Should().Be(3);
        first.GetProperty("top_logprobs")[0].GetProperty("token").GetString().Should().Be(first.GetProperty("token").GetString(), "greedy picks the most likely token");
    }

    [Fact]
    public async Task Completion_continues_the_raw_prompt_as_the_library_does()
    {
        var (status, body) = await server.PostAsync("/v1/completions", new { model = ServerFixture.ModelName, prompt = Prompt, max_tokens = 10, temperature = 0 });
        status.Should().Be(200, body.ToString());
        body.GetProperty("object").GetString().Should().Be("text_completion");
        body.GetProperty("choices")[0].GetProperty("text").GetString().Should().Be(await ServerFixture.LibraryCompletionAsync(Prompt, 10));
        body.GetProperty("usage").GetProperty("completion_tokens").GetInt32().Should().BeInRange(1, 10);

        var events = await server.PostEventsAsync("/v1/completions", new { model = ServerFixture.ModelName, prompt = Prompt, max_tokens = 10, temperature = 0, stream = true });
        string.Concat(events.Select(e => e.GetProperty("choices")[0].GetProperty("text").GetString()))
            .Should().Be(body.GetProperty("choices")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task Embeddings_have_the_models_width_for_every_input()
    {
        var (status, body) = await server.PostAsync("/v1/embeddings", new { model = ServerFixture.ModelName, input = new[] { "a cat", "a dog sat" } });
        status.Should().Be(200, body.ToString());
        var data = body.GetProperty("data");
        data.GetArrayLength().Should().Be(2);
        data[1].GetProperty("index").GetInt32().Should().Be(1);
        int width = data[0].GetProperty("embedding").GetArrayLength();
        width.Should().BeGreaterThan(0);
        data[1].GetProperty("embedding").GetArrayLength().Should().Be(width);
        body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32().Should().BeGreaterThan(0);

        var (_, b64) = await server.PostAsync("/v1/embeddings", new { model = ServerFixture.ModelName, input = "a cat", encoding_format = "base64" });
        var bytes = System.Convert.FromBase64String(b64.GetProperty("data")[0].GetProperty("embedding").GetString()!);
        bytes.Length.Should().Be(width * 4);
        BitConverter.ToSingle(bytes, 0).Should().Be(data[0].GetProperty("embedding")[0].GetSingle());
    }
}

/// <summary>/metrics in Prometheus text after some traffic.</summary>
public class ServerMetricsTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task Metrics_count_requests_tokens_and_latencies()
    {
        var (status, body) = await server.PostAsync("/v1/chat/completions", new
        {
            model = ServerFixture.ModelName,
            messages = new[] { new { role = "user", content = "Once upon a time" } },
            max_tokens = 5,
        });
        status.Should().Be(200, body.ToString());
        int generated = body.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        using var response = await server.Http.GetAsync("/metrics");
        response.Content.Headers.ContentType!.MediaType.Should().Be("text/plain");
        var text = await response.Content.ReadAsStringAsync();
        text.Should().Contain("engine_requests_running").And.Contain("engine_requests_waiting").And.Contain("engine_kv_blocks_used")
            .And.Contain("engine_prefix_cache_hit_tokens");
        text.Should().MatchRegex("engine_http_requests[_a-z]*\\{[^}]*route=\"/v1/chat/completions\"[^}]*status=\"200\"");
        text.Should().Contain("engine_time_to_first_token_seconds_bucket").And.Contain("engine_inter_token_latency_seconds_bucket");
        var line = text.Split('\n').First(l => l.StartsWith("engine_generated_tokens ", StringComparison.Ordinal));
        double.Parse(line.Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture).Should().BeGreaterThanOrEqualTo(generated);
    }
}

/// <summary>Qwen3's per-request thinking switch through both API families: off, the template opens the reply with an
/// empty think block, which the prompt's token count shows.</summary>
public class ThinkingSwitchTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    async Task<int> PromptTokens(object request)
    {
        var (status, body) = await server.PostAsync("/v1/chat/completions", request);
        status.Should().Be(200, body.ToString());
        return body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32();
    }

    [Fact]
    public async Task Enable_thinking_false_adds_the_empty_think_block()
    {
        var messages = new[] { new { role = "user", content = "What is the capital of France?" } };
        int plain = await PromptTokens(new { model = ServerFixture.ChatModelName, messages, max_tokens = 1 });
        int off = await PromptTokens(new { model = ServerFixture.ChatModelName, messages, max_tokens = 1, chat_template_kwargs = new { enable_thinking = false } });
        int on = await PromptTokens(new { model = ServerFixture.ChatModelName, messages, max_tokens = 1, chat_template_kwargs = new { enable_thinking = true } });
        on.Should().Be(plain);
        off.Should().BeGreaterThan(plain, "<think>\\n\\n</think>\\n\\n is added to the generation prompt");

        var (status, body) = await server.PostAsync("/api/chat", new { model = ServerFixture.ChatModelName, messages, stream = false, think = false, options = new { num_predict = 1 } });
        status.Should().Be(200, body.ToString());
        body.GetProperty("prompt_eval_count").GetInt32().Should().Be(off);
    }
}

/// <summary>Reasoning apart: a server whose model's template opens a think block (DeepSeek-R1's, forced on the shipped
/// model) returns what the model writes inside it as reasoning_content / message.thinking, or inline with
/// reasoning_format none.</summary>
public class ReasoningTests
{
    [Fact]
    public async Task Reasoning_comes_apart_in_both_api_families_and_inline_when_asked()
    {
        var options = ServerFixture.Options();
        await using var server = EngineServer.Create(options with { Models = [ServerFixture.ModelPath], LoadOptions = options.LoadOptions with { ChatTemplate = "deepseek-r1" } });
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Address };
        async Task<JsonElement> Post(string path, object body)
        {
            using var r = await http.PostAsync(path, new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"));
            var text = await r.Content.ReadAsStringAsync();
            ((int)r.StatusCode).Should().Be(200, text);
            return JsonDocument.Parse(text).RootElement.Clone();
        }
        var messages = new[] { new { role = "user", content = "Once upon a time" } };
        var apart = await Post("/v1/chat/completions", new { model = ServerFixture.ModelName, messages, max_tokens = 8, temperature = 0 });
        var message = apart.GetProperty("choices")[0].GetProperty("message");
        var reasoning = message.GetProperty("reasoning_content").GetString();
        reasoning.Should().NotBeNullOrEmpty("the reply starts inside the think block the template opened");
        message.GetProperty("content").GetString().Should().BeEmpty("the tiny model never closes the think block");

        var inline = await Post("/v1/chat/completions", new { model = ServerFixture.ModelName, messages, max_tokens = 8, temperature = 0, reasoning_format = "none" });
        var inlineMessage = inline.GetProperty("choices")[0].GetProperty("message");
        inlineMessage.GetProperty("content").GetString().Should().Be($"<think>{reasoning}</think>");
        inlineMessage.GetProperty("reasoning_content").ValueKind.Should().Be(JsonValueKind.Null);

        // Streamed, the reasoning comes in delta.reasoning_content.
        using (var streamed = await http.PostAsync("/v1/chat/completions", new StringContent(JsonSerializer.Serialize(new
               { model = ServerFixture.ModelName, messages, max_tokens = 8, temperature = 0, stream = true }), Encoding.UTF8, "application/json")))
        {
            var deltas = (await streamed.Content.ReadAsStringAsync()).Split('\n')
                .Where(l => l.StartsWith("data: {", StringComparison.Ordinal))
                .Select(l => JsonDocument.Parse(l[6..]).RootElement.GetProperty("choices")[0].GetProperty("delta")).ToList();
            string.Concat(deltas.Select(d => d.TryGetProperty("reasoning_content", out var r) ? r.GetString() : "")).Should().Be(reasoning);
        }

        var ollama = await Post("/api/chat", new { model = ServerFixture.ModelName, messages, stream = false, options = new { temperature = 0, num_predict = 8 } });
        ollama.GetProperty("message").GetProperty("thinking").GetString().Should().Be(reasoning);
        var hidden = await Post("/api/chat", new { model = ServerFixture.ModelName, messages, stream = false, think = false, options = new { temperature = 0, num_predict = 8 } });
        hidden.GetProperty("message").GetProperty("thinking").ValueKind.Should().Be(JsonValueKind.Null, "think: false hides the reasoning");
    }
}

/// <summary><see cref="OpenAiApiChecks"/> against the server on a loopback socket.</summary>
public sealed class OpenAiApiTests(ServerFixture server) : OpenAiApiChecks(server), IClassFixture<ServerFixture>;

/// <summary><see cref="OpenAiApiChecks"/> against the server in memory (TestServer).</summary>
public sealed class OpenAiApiInMemoryTests(InMemoryServerFixture server) : OpenAiApiChecks(server), IClassFixture<InMemoryServerFixture>;
