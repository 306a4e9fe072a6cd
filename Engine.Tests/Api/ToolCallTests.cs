using System.ComponentModel;
using System.Text.Json;
using Engine.Tests.Support;
using Microsoft.Extensions.AI;

namespace Engine.Tests.Api;

/// <summary>Tools through the library: the model's template shows them, replies are parsed into calls (scripted with a
/// grammar where the tiny random model would not call on its own), a required call always parses, and
/// Microsoft.Extensions.AI's function invocation runs a call and sends its result back.</summary>
public class ToolCallTests
{
    static readonly string ChatModelPath = TestPaths.Repo("Engine.Tests", "Fixtures", "qwen2-tiny-chat-Q8_0.gguf");
    static readonly ModelLoadOptions Load = new() { Threads = 2, ContextLength = 2048 };

    static readonly ChatTool Weather = new("get_weather", "The weather in a city", JsonDocument.Parse("""
        {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}, "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}
        """).RootElement);

    static async Task<(string Answer, IReadOnlyList<ToolCall> Calls, FinishReason? Finish)> Reply(Session session, IEnumerable<ChatTurn> turns, GenerateOptions options)
    {
        string answer = "";
        IReadOnlyList<ToolCall> calls = [];
        FinishReason? finish = null;
        await foreach (var u in session.ChatAsync(turns, options))
        {
            answer += u.Answer;
            if (u.Token.FinishReason is { } f) { finish = f; calls = u.ToolCalls; }
            else u.ToolCalls.Should().BeEmpty("calls come with the last update");
        }
        return (answer, calls, finish);
    }

    [Fact]
    public async Task A_scripted_reply_with_text_then_a_call_gives_the_text_and_the_call_apart()
    {
        using var model = Model.Load(ChatModelPath, Load);
        using var session = model.CreateSession();
        var script = "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>";
        var options = GenerateOptions.Greedy with { Tools = [Weather], Grammar = "root ::= " + JsonSerializer.Serialize(script), MaxTokens = 200 };
        var (answer, calls, finish) = await Reply(session, [ChatTurn.User("Weather in Paris?")], options);
        answer.Should().Be("Let me look.");
        calls.Should().ContainSingle().Which.Should().BeEquivalentTo(new { Name = "get_weather", Arguments = "{\"city\":\"Paris\",\"unit\":\"celsius\"}" });
        calls[0].Id.Should().MatchRegex("^call_[A-Za-z0-9]{24}$");
        finish.Should().Be(FinishReason.EndOfGeneration, "the grammar was complete, so only the end of turn was allowed");
    }

    [Theory]
    [InlineData(null, 3)]
    [InlineData("get_weather", 4)]
    public async Task A_required_call_always_parses_whatever_the_seed(string? function, int seeds)
    {
        using var model = Model.Load(ChatModelPath, Load);
        var other = new ChatTool("get_time", "The time", JsonDocument.Parse("""{"type": "object", "properties": {"zone": {"type": "string", "maxLength": 8}}}""").RootElement);
        for (ulong seed = 1; seed <= (ulong)seeds; seed++)
        {
            using var session = model.CreateSession();
            var options = new GenerateOptions
            {
                Tools = [Weather, other],
                ToolChoice = function is null ? ToolChoice.Required : ToolChoice.Function(function),
                Seed = seed, MaxTokens = 300,
            };
            var (_, calls, _) = await Reply(session, [ChatTurn.User("Weather?")], options);
            calls.Should().NotBeEmpty($"seed {seed}");
            foreach (var call in calls)
            {
                if (function is not null) call.Name.Should().Be(function);
                call.Name.Should().BeOneOf("get_weather", "get_time");
                using var arguments = JsonDocument.Parse(call.Arguments);
                arguments.RootElement.ValueKind.Should().Be(JsonValueKind.Object);
                if (call.Name == "get_weather") arguments.RootElement.GetProperty("unit").GetString().Should().BeOneOf("celsius", "fahrenheit");
            }
        }
    }

    [Fact]
    public async Task Built_in_formats_refuse_tools_and_bad_choices_are_named()
    {
        using var stories = Model.Load(TestPaths.Repo("models", "stories260K.gguf"));
        using var session = stories.CreateSession();
        var refused = () => session.ChatAsync([ChatTurn.User("hi")], new GenerateOptions { Tools = [Weather] }).GetAsyncEnumerator().MoveNextAsync().AsTask();
        (await refused.Should().ThrowAsync<ChatTemplateException>()).WithMessage("*cannot show tools*--chat-template-file*");

        using var model = Model.Load(ChatModelPath, Load);
        using var chat = model.CreateSession();
        Task Start(GenerateOptions o) => chat.ChatAsync([ChatTurn.User("hi")], o).GetAsyncEnumerator().MoveNextAsync().AsTask();
        (await FluentActions.Awaiting(() => Start(new GenerateOptions { Tools = [Weather], ToolChoice = ToolChoice.Function("nope") }))
            .Should().ThrowAsync<InvalidSamplingOptionsException>()).WithMessage("*'nope'*not one of the tools*");
        (await FluentActions.Awaiting(() => Start(new GenerateOptions { ToolChoice = ToolChoice.Required }))
            .Should().ThrowAsync<InvalidSamplingOptionsException>()).WithMessage("*needs tools*");
        (await FluentActions.Awaiting(() => Start(new GenerateOptions { Tools = [Weather, Weather] }))
            .Should().ThrowAsync<InvalidSamplingOptionsException>()).WithMessage("*given twice*");
        (await FluentActions.Awaiting(() => Start(new GenerateOptions { Tools = [new ChatTool("a b")] }))
            .Should().ThrowAsync<InvalidSamplingOptionsException>()).WithMessage("*tool name 'a b'*");
    }

    // Enumerations keep the random model's arguments short: a free string could run past the token limit.
    public enum City { Paris, Oslo, Rome }
    public enum Unit { Celsius, Fahrenheit }

    [Description("The weather in a city")]
    static string GetWeather([Description("The city")] City city, [Description("The unit")] Unit unit) => $"21 degrees {unit} in {city}";

    [Fact]
    public async Task Function_invocation_runs_the_call_and_sends_the_result_back_to_the_model()
    {
        using var model = Model.Load(ChatModelPath, Load);
        using var client = new FunctionInvokingChatClient(model.AsChatClient()) { MaximumIterationsPerRequest = 2 };
        var options = new ChatOptions
        {
            Tools = [AIFunctionFactory.Create(GetWeather, "get_weather")],
            ToolMode = ChatToolMode.RequireSpecific("get_weather"),
            MaxOutputTokens = 200, Seed = 5,
        };
        var response = await client.GetResponseAsync([new(ChatRole.User, "What is the weather in Paris?")], options);
        var call = response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>().First();
        call.Name.Should().Be("get_weather");
        var result = response.Messages.SelectMany(m => m.Contents).OfType<FunctionResultContent>().First();
        result.CallId.Should().Be(call.CallId);
        result.Result!.ToString().Should().Be($"21 degrees {call.Arguments!["unit"]} in {call.Arguments["city"]}");
        response.Messages.Last().Role.Should().Be(ChatRole.Assistant, "after the result the model answered again");
    }
}
