using Engine.Chat;

namespace Engine.Tests.Chat;

/// <summary>
/// Exact renderings. The Qwen3 and Llama-3 expectations were produced by rendering the real Jinja templates from
/// ../shared/models/{qwen3,llama3}-tokenizer/tokenizer_config.json with Python jinja2 3.1.6 (trim_blocks,
/// lstrip_blocks, as transformers does), with the leading BOS removed (the tokenizer adds it here).
/// Llama-2 and DeepSeek-R1 follow Meta's and DeepSeek's published templates.
/// </summary>
public class ChatTemplateRenderTests
{
    [Fact]
    public void ChatMl_three_messages()
    {
        new ChatMlTemplate().Render(Conversations.Three, addGenerationPrompt: false).Should().Be(
            "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n" +
            "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n");
    }

    [Fact]
    public void ChatMl_generation_prompt_and_optional_default_system_prompt()
    {
        ChatMessage[] user = [new("user", "Hi!")];
        new ChatMlTemplate().Render(user, true).Should().Be("<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
        new ChatMlTemplate(ChatMlTemplate.Qwen25DefaultSystemPrompt).Render(user, true).Should().Be(
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
            "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
        // An explicit system message replaces the default.
        new ChatMlTemplate(ChatMlTemplate.Qwen25DefaultSystemPrompt).Render(Conversations.Three, false)
            .Should().Be(new ChatMlTemplate().Render(Conversations.Three, false));
    }

    [Fact]
    public void Qwen3_three_messages_matches_the_real_template()
    {
        new Qwen3Template().Render(Conversations.Three, false).Should().Be(
            "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n" +
            "<|im_start|>assistant\n<think>\n\n</think>\n\nHello! How can I help?<|im_end|>\n");
    }

    [Fact]
    public void Qwen3_drops_reasoning_of_earlier_turns_and_honours_enable_thinking()
    {
        const string expected =
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n" +
            "<|im_start|>user\n  And 3+3? <|im_end|>\n<|im_start|>assistant\n";
        new Qwen3Template().Render(Conversations.Multi, true).Should().Be(expected);
        new Qwen3Template(enableThinking: false).Render(Conversations.Multi, true).Should().Be(expected + "<think>\n\n</think>\n\n");
    }

    [Fact]
    public void Qwen3_groups_tool_responses_into_one_user_turn()
    {
        new Qwen3Template().Render(Conversations.Tools, true).Should().Be(
            "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\nChecking.<|im_end|>\n" +
            "<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\n22C\n</tool_response><|im_end|>\n" +
            "<|im_start|>assistant\n");
    }

    [Fact]
    public void Llama3_three_messages_matches_the_real_template()
    {
        new Llama3Template().Render(Conversations.Three, true).Should().Be(
            "<|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
        new Llama3Template().Render(Conversations.Three, false).Should().EndWith("How can I help?<|eot_id|>");
    }

    [Fact]
    public void Llama3_trims_content_like_the_real_template()
    {
        new Llama3Template().Render(Conversations.Multi, true).Should().Be(
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n<think>\nadd them\n</think>\n\n4<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
    }

    [Fact]
    public void Llama2_three_messages_and_a_second_turn()
    {
        new Llama2Template().Render(Conversations.Three, false).Should().Be(
            "[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHi! [/INST] Hello! How can I help? </s>");
        ChatMessage[] twoTurns = [.. Conversations.Three, new("user", "Thanks")];
        new Llama2Template().Render(twoTurns, true).Should().Be(
            "[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHi! [/INST] Hello! How can I help? </s><s>[INST] Thanks [/INST]");
        new Llama2Template().Render([new("user", " Hi ")], true).Should().Be("[INST] Hi [/INST]");
    }

    [Fact]
    public void Llama2_rejects_turns_that_do_not_alternate()
    {
        FluentActions.Invoking(() => new Llama2Template().Render([new("user", "a"), new("user", "b")], true))
            .Should().Throw<ChatTemplateException>().WithMessage("*message 1*");
        FluentActions.Invoking(() => new Llama2Template().Render([new("assistant", "a")], true))
            .Should().Throw<ChatTemplateException>();
    }

    [Fact]
    public void DeepSeekR1_three_messages_with_exact_fullwidth_markers()
    {
        new DeepSeekR1Template().Render(Conversations.Three, false).Should().Be(
            "You are helpful.<｜User｜>Hi!<｜Assistant｜>Hello! How can I help?<｜end▁of▁sentence｜>");
        // The markers really are U+FF5C and U+2581, not ASCII '|' and '_'.
        DeepSeekR1Template.UserTag.Should().Be("<\uFF5CUser\uFF5C>");
        DeepSeekR1Template.EndOfSentence.Should().Be("<\uFF5Cend\u2581of\u2581sentence\uFF5C>");
    }

    [Fact]
    public void DeepSeekR1_generation_prompt_opens_think_and_history_loses_reasoning()
    {
        var r1 = new DeepSeekR1Template();
        r1.Render(Conversations.Multi, true).Should().Be(
            "Be brief.<｜User｜>2+2?<｜Assistant｜>\n\n4<｜end▁of▁sentence｜><｜User｜>  And 3+3? <｜Assistant｜><think>\n");
        r1.GenerationPromptOpensThinking.Should().BeTrue();
        new DeepSeekR1Template(openThinking: false).Render([new("user", "x")], true).Should().Be("<｜User｜>x<｜Assistant｜>");
    }

    [Fact]
    public void DeepSeekR1_joins_several_system_messages()
    {
        new DeepSeekR1Template().Render([new("system", "A"), new("user", "q"), new("system", "B")], false)
            .Should().Be("A\n\nB<｜User｜>q");
    }

    [Fact]
    public void Templates_report_bos_and_stop_strings()
    {
        new ChatMlTemplate().BosToken.Should().BeNull();
        new ChatMlTemplate().StopStrings.Should().Contain("<|im_end|>");
        new Llama3Template().BosToken.Should().Be("<|begin_of_text|>");
        new Llama3Template().StopStrings.Should().Contain("<|eot_id|>");
        new Llama2Template().StopStrings.Should().Equal("</s>");
        new DeepSeekR1Template().StopStrings.Should().Equal("<｜end▁of▁sentence｜>");
    }

    [Theory]
    [InlineData("user\n")]
    [InlineData("<|im_start|>")]
    [InlineData("")]
    public void Roles_that_could_inject_markup_are_rejected(string role)
    {
        IChatTemplate[] all = [new ChatMlTemplate(), new Qwen3Template(), new Llama3Template(), new Llama2Template(), new DeepSeekR1Template()];
        foreach (var t in all)
            FluentActions.Invoking(() => t.Render([new(role, "x")], true)).Should().Throw<ChatTemplateException>();
    }

    [Fact]
    public void Unsupported_roles_fail_loudly_instead_of_vanishing()
    {
        FluentActions.Invoking(() => new Qwen3Template().Render([new("critic", "x")], true)).Should().Throw<ChatTemplateException>();
        FluentActions.Invoking(() => new DeepSeekR1Template().Render([new("tool", "x")], true)).Should().Throw<ChatTemplateException>();
        new ChatMlTemplate().Render([new("critic", "x")], false).Should().Be("<|im_start|>critic\nx<|im_end|>\n");
    }
}
