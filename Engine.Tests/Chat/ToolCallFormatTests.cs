using Engine.Chat.Tools;

namespace Engine.Tests.Chat;

/// <summary>Each family's tool-call format, read from replies written the way the models write them (the formats their
/// chat templates teach and llama.cpp's parsers expect), and the stream gate that keeps call text out of the answer.</summary>
public class ToolCallFormatTests
{
    [Theory]
    [InlineData("hermes", "<tool_call>")]
    [InlineData("llama3-json", "<|start_header_id|>")]
    [InlineData("mistral", "[TOOL_CALLS]")]
    [InlineData("deepseek", "<｜tool▁calls▁begin｜>")]
    [InlineData("hermes", "{{ messages }}")]
    public void The_format_comes_from_the_markers_the_template_writes(string expected, string templateText) =>
        ToolCallFormat.Detect(templateText).Name.Should().Be(expected);

    [Fact]
    public void Qwen_writes_one_tool_call_block_per_call()
    {
        var reply = new HermesToolCalls().Parse(
            "Let me check both.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>\n" +
            "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"Europe/Paris\"}}\n</tool_call>");
        reply.Content.Should().Be("Let me check both.");
        reply.Calls.Should().Equal(
            new ParsedToolCall("get_weather", "{\"city\":\"Paris\",\"unit\":\"celsius\"}"),
            new ParsedToolCall("get_time", "{\"zone\":\"Europe/Paris\"}"));
    }

    [Fact]
    public void Hermes_calls_with_string_arguments_a_missing_close_or_no_arguments_still_parse()
    {
        var format = new HermesToolCalls();
        format.Parse("<tool_call>\n{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 1}\"}\n</tool_call>").Calls.Single()
            .Should().Be(new ParsedToolCall("f", "{\"x\":1}"));
        format.Parse("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": \"é\"}}").Calls.Single().Arguments.Should().Be("{\"x\":\"é\"}");
        format.Parse("<tool_call>{\"name\": \"now\"}</tool_call>").Calls.Single().Should().Be(new ParsedToolCall("now", "{}"));
    }

    [Theory]
    [InlineData("Just an answer.")]
    [InlineData("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}\n</tool_call>")] // unbalanced JSON
    [InlineData("<tool_call>\n{\"arguments\": {}}\n</tool_call>")] // no name
    [InlineData("<tool_call>\n{\"name\": \"f\", \"arguments\": [1]}\n</tool_call>")] // arguments not an object
    [InlineData("<tool_call>{\"name\": \"f\"}</tool_call> and then more prose")]
    public void A_hermes_reply_without_a_valid_call_stays_text(string text)
    {
        var reply = new HermesToolCalls().Parse(text);
        reply.Calls.Should().BeEmpty();
        reply.Content.Should().Be(text);
    }

    [Fact]
    public void Llama3_writes_bare_json_with_parameters()
    {
        var format = new Llama3ToolCalls();
        format.Parse("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}").Calls.Single()
            .Should().Be(new ParsedToolCall("get_weather", "{\"city\":\"Paris\"}"));
        format.Parse("{\"type\": \"function\", \"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"n\": 2}}").Calls
            .Should().Equal(new ParsedToolCall("a", "{}"), new ParsedToolCall("b", "{\"n\":2}"));
        format.Parse("<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}").Calls.Single().Name.Should().Be("get_weather");
        format.Parse("The weather is {sunny}.").Calls.Should().BeEmpty();
        format.Parse("{\"answer\": 42}").Content.Should().Be("{\"answer\": 42}");
    }

    [Fact]
    public void Llama3_built_in_tools_use_the_python_tag_and_call_syntax()
    {
        var call = new Llama3ToolCalls().Parse("<|python_tag|>brave_search.call(query=\"weather in Paris\", count=3)").Calls.Single();
        call.Should().Be(new ParsedToolCall("brave_search", "{\"query\":\"weather in Paris\",\"count\":3}"));
    }

    [Fact]
    public void Mistral_writes_a_json_array_or_name_and_args_pairs()
    {
        var format = new MistralToolCalls();
        format.Parse("[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abc123XYZ\"}, {\"name\": \"now\", \"arguments\": {}}]").Calls
            .Should().Equal(new ParsedToolCall("get_weather", "{\"city\":\"Paris\"}", "abc123XYZ"), new ParsedToolCall("now", "{}"));
        format.Parse("Sure.[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]now[ARGS]{}").Should().BeEquivalentTo(
            new ParsedReply("Sure.", [new ParsedToolCall("get_weather", "{\"city\":\"Paris\"}"), new ParsedToolCall("now", "{}")]));
        format.Parse("[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{\"city\": \"Rome\"}").Calls.Single().Id.Should().Be("a1b2c3d4e");
        format.Parse("[TOOL_CALLS]get weather[ARGS]{}").Calls.Should().BeEmpty();
        format.NewCallId().Should().MatchRegex("^[A-Za-z0-9]{9}$");
    }

    [Fact]
    public void DeepSeek_R1_writes_fenced_json_and_V3_1_writes_it_bare()
    {
        var format = new DeepSeekToolCalls();
        var r1 = format.Parse("I will look it up.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>\n" +
                              "<｜tool▁call▁begin｜>function<｜tool▁sep｜>now\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>");
        r1.Should().BeEquivalentTo(new ParsedReply("I will look it up.", [new ParsedToolCall("get_weather", "{\"city\":\"Paris\"}"), new ParsedToolCall("now", "{}")]));
        format.Parse("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Rome\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>").Calls
            .Single().Should().Be(new ParsedToolCall("get_weather", "{\"city\":\"Rome\"}"));
        format.Parse("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{\"x\": \n```<｜tool▁call▁end｜>").Calls.Should().BeEmpty();
    }

    static (string Text, IReadOnlyList<ParsedToolCall> Calls) Stream(ToolCallFormat format, params string[] pieces)
    {
        var gate = new ToolCallStream(format);
        var shown = string.Concat(pieces.Select(gate.Push));
        var (rest, calls) = gate.Finish();
        return (shown + rest, calls);
    }

    [Fact]
    public void The_stream_shows_text_until_a_marker_and_never_shows_the_call()
    {
        var gate = new ToolCallStream(new HermesToolCalls());
        gate.Push("Checking").Should().Be("Checking");
        gate.Push(" now.\n<tool").Should().Be(" now.", "a partial marker at the end is held, and the whitespace before it");
        gate.Push("_call>\n{\"name\": \"f\", ").Should().BeEmpty();
        gate.Push("\"arguments\": {}}\n</tool_call>").Should().BeEmpty();
        var (rest, calls) = gate.Finish();
        rest.Should().BeEmpty("the text before the calls was shown already; trailing whitespace of it is dropped");
        calls.Single().Name.Should().Be("f");
    }

    [Fact]
    public void A_held_partial_marker_that_was_not_one_is_released()
    {
        Stream(new HermesToolCalls(), "a < b and <tool", "box> is fine").Should().Be(("a < b and <toolbox> is fine", Array.Empty<ParsedToolCall>()));
        Stream(new HermesToolCalls(), "<tool_call>\nnot json").Text.Should().Be("<tool_call>\nnot json");
    }

    [Fact]
    public void Llama3_bare_calls_are_held_from_the_first_brace_and_prose_streams()
    {
        var (text, calls) = Stream(new Llama3ToolCalls(), "  {\"name\": \"f\", ", "\"parameters\": {\"a\": 1}}");
        text.Trim().Should().BeEmpty();
        calls.Single().Should().Be(new ParsedToolCall("f", "{\"a\":1}"));
        var gate = new ToolCallStream(new Llama3ToolCalls());
        gate.Push("The").Should().Be("The");
        gate.Push(" answer {x}").Should().Be(" answer {x}");
        gate.Finish().Calls.Should().BeEmpty();
    }
}
