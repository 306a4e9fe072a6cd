using System.ClientModel;
using System.ComponentModel;
using System.Text.Json;
using Engine.Server;
using Microsoft.Extensions.AI;
using OllamaSharp;
using OpenAI;

namespace Engine.Tests.Server;

/// <summary>The tiny Qwen-shaped chat model (Qwen3's Jinja template, which renders tools and writes
/// <c>&lt;tool_call&gt;</c> blocks) with a context large enough for the tools' text, and an Ollama reply that a test can
/// script with a grammar (Ollama's API has no tool_choice).</summary>
public sealed class ToolServerFixture : ServerFixture
{
    /// <summary>A GBNF grammar every Ollama request runs under while set.</summary>
    public string? ScriptedOllamaReply { get; set; }

    public override async Task InitializeAsync()
    {
        var server = EngineServer.Create(Options(Log) with
        {
            Models = [ChatModelPath],
            LoadOptions = new ModelLoadOptions { Threads = 2, ContextLength = 2048, KvCacheType = KvCacheType.F32 },
            AdjustGeneration = o => ScriptedOllamaReply is { } grammar ? o with { Grammar = grammar } : o,
        });
        await server.StartAsync();
        Started(server, new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(120) });
    }
}

/// <summary>Tool calling over both APIs with real clients: a call forced by tool_choice through the OpenAI .NET SDK
/// (streamed, then answered with the function's result through Microsoft.Extensions.AI's function invocation), an
/// Ollama call through OllamaSharp, structured output, and the rendered prompt (POST /apply-template).</summary>
public class ToolCallServerTests(ToolServerFixture server) : IClassFixture<ToolServerFixture>
{
    const string Model = ServerFixture.ChatModelName;

    static readonly object WeatherTool = new
    {
        type = "function",
        function = new
        {
            name = "get_weather",
            description = "The weather in a city",
            parameters = new
            {
                type = "object",
                properties = new { city = new { type = "string", maxLength = 12 }, unit = new { type = "string", @enum = new[] { "celsius", "fahrenheit" } } },
                required = new[] { "city", "unit" },
            },
        },
    };

    // Enumerations keep the random model's arguments short: a free string could run past the token limit.
    public enum City { Paris, Oslo, Rome }
    public enum Unit { Celsius, Fahrenheit }

    [Description("The weather in a city")]
    static string GetWeather([Description("The city")] City city, [Description("The unit")] Unit unit) => $"21 degrees {unit} in {city}";

    [Fact]
    public async Task The_template_shows_the_tools_and_an_earlier_call_with_its_result()
    {
        var (status, body) = await server.PostAsync("/apply-template", new
        {
            model = Model,
            messages = new object[]
            {
                new { role = "user", content = "Weather in Paris?" },
                new { role = "assistant", content = "", tool_calls = new[] { new { id = "call_1", type = "function", function = new { name = "get_weather", arguments = "{\"city\": \"Paris\", \"unit\": \"celsius\"}" } } } },
                new { role = "tool", tool_call_id = "call_1", content = "21 degrees" },
            },
            tools = new[] { WeatherTool },
        });
        status.Should().Be(200, body.ToString());
        var prompt = body.GetProperty("prompt").GetString()!;
        // Qwen3's template: the tools as JSON lines inside <tools>, the call as a <tool_call> block with the arguments
        // as an object (tojson), the result inside <tool_response> in a user turn.
        prompt.Should().Contain("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"The weather in a city\"");
        prompt.Should().Contain("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>");
        prompt.Should().Contain("<|im_start|>user\n<tool_response>\n21 degrees\n</tool_response><|im_end|>");
        prompt.Should().EndWith("<|im_start|>assistant\n");

        var (badStatus, bad) = await server.PostAsync("/apply-template", new { model = Model, messages = new[] { new { role = "user", content = "hi" } }, tools = new[] { new { type = "function", function = new { name = "bad name!" } } } });
        badStatus.Should().Be(400, bad.ToString());
    }

    [Fact]
    public async Task A_call_forced_by_tool_choice_streams_through_the_OpenAI_SDK_and_its_result_goes_back()
    {
        IChatClient openAi = new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(server.Address, "/v1") })
            .GetChatClient(Model).AsIChatClient();
        var function = AIFunctionFactory.Create(GetWeather, "get_weather");
        var options = new ChatOptions { Tools = [function], ToolMode = ChatToolMode.RequireSpecific("get_weather"), Temperature = 0, MaxOutputTokens = 200 };

        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in openAi.GetStreamingResponseAsync([new(ChatRole.User, "What is the weather in Paris?")], options)) updates.Add(update);
        var call = updates.SelectMany(u => u.Contents).OfType<FunctionCallContent>().Single();
        call.Name.Should().Be("get_weather");
        call.CallId.Should().StartWith("call_");
        call.Arguments!.Keys.Should().BeEquivalentTo("city", "unit");
        call.Arguments["unit"]!.ToString().Should().BeOneOf("Celsius", "Fahrenheit");
        updates.Last(u => u.FinishReason is not null).FinishReason.Should().Be(ChatFinishReason.ToolCalls);

        // Function invocation: the call is run and its result sent back; the model then answers (auto after the first round).
        using var invoking = new FunctionInvokingChatClient(openAi) { MaximumIterationsPerRequest = 2 };
        var response = await invoking.GetResponseAsync([new(ChatRole.User, "What is the weather in Paris?")], options);
        var result = response.Messages.SelectMany(m => m.Contents).OfType<FunctionResultContent>().First();
        result.Result!.ToString().Should().StartWith("21 degrees");
    }

    [Fact]
    public async Task Required_calls_come_whole_in_a_non_streamed_answer()
    {
        var (status, body) = await server.PostAsync("/v1/chat/completions", new
        {
            model = Model,
            messages = new[] { new { role = "user", content = "Weather?" } },
            tools = new[] { WeatherTool },
            tool_choice = "required",
            max_tokens = 200,
            seed = 3,
        });
        status.Should().Be(200, body.ToString());
        var choice = body.GetProperty("choices")[0];
        choice.GetProperty("finish_reason").GetString().Should().Be("tool_calls");
        var call = choice.GetProperty("message").GetProperty("tool_calls")[0];
        call.GetProperty("type").GetString().Should().Be("function");
        call.GetProperty("function").GetProperty("name").GetString().Should().Be("get_weather");
        using var arguments = JsonDocument.Parse(call.GetProperty("function").GetProperty("arguments").GetString()!);
        arguments.RootElement.GetProperty("city").GetString()!.Length.Should().BeLessThanOrEqualTo(12);
    }

    [Fact]
    public async Task An_Ollama_tool_call_reaches_OllamaSharp_with_its_arguments_as_an_object()
    {
        server.ScriptedOllamaReply = """root ::= "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"unit\": \"celsius\"}}\n</tool_call>" """;
        try
        {
            using var ollama = new OllamaApiClient(server.Address, Model);
            var request = new OllamaSharp.Models.Chat.ChatRequest
            {
                Model = Model,
                Messages = [new OllamaSharp.Models.Chat.Message(OllamaSharp.Models.Chat.ChatRole.User, "Weather in Oslo?")],
                Tools = [JsonSerializer.Deserialize<OllamaSharp.Models.Chat.Tool>(JsonSerializer.Serialize(WeatherTool))!],
                Stream = true,
            };
            var calls = new List<OllamaSharp.Models.Chat.Message.ToolCall>();
            await foreach (var chunk in ollama.ChatAsync(request))
                if (chunk?.Message?.ToolCalls is { } toolCalls) calls.AddRange(toolCalls);
            var call = calls.Single();
            call.Function!.Name.Should().Be("get_weather");
            call.Function.Arguments!["city"]!.ToString().Should().Be("Oslo");
            call.Function.Arguments["unit"]!.ToString().Should().Be("celsius");
        }
        finally { server.ScriptedOllamaReply = null; }
    }

    [Fact]
    public async Task A_json_schema_response_format_gives_json_that_validates()
    {
        var (status, body) = await server.PostAsync("/v1/chat/completions", new
        {
            model = Model,
            messages = new[] { new { role = "user", content = "A person, please." } },
            response_format = new
            {
                type = "json_schema",
                json_schema = new
                {
                    name = "person",
                    schema = new
                    {
                        type = "object",
                        properties = new { name = new { type = "string", maxLength = 10 }, age = new { type = "integer", minimum = 0, maximum = 120 } },
                        required = new[] { "name", "age" },
                        additionalProperties = false,
                    },
                },
            },
            max_tokens = 200,
            seed = 7,
        });
        status.Should().Be(200, body.ToString());
        using var person = JsonDocument.Parse(body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!);
        person.RootElement.EnumerateObject().Select(p => p.Name).Should().BeEquivalentTo("name", "age");
        person.RootElement.GetProperty("age").GetInt32().Should().BeInRange(0, 120);

        var (badStatus, bad) = await server.PostAsync("/v1/chat/completions", new
        {
            model = Model,
            messages = new[] { new { role = "user", content = "x" } },
            response_format = new { type = "json_schema", json_schema = new { name = "x", schema = new { type = "object", patternProperties = new { a = new { type = "string" } } } } },
        });
        badStatus.Should().Be(400, bad.ToString());
        bad.GetProperty("error").GetProperty("message").GetString().Should().Contain("patternProperties");
    }
}
