using System.Text.Json;
using Engine.Chat;
using Engine.Tests.Support;

namespace Engine.Tests.Chat;

/// <summary>The IChatTemplate over a model's own Jinja template: llama.cpp's BOS policy, the think-opening probe, and
/// errors as the public ChatTemplateException.</summary>
public class JinjaChatTemplateTests
{
    const string Llama3Like = "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|eot|>{% endfor %}" +
                              "{% if add_generation_prompt %}<|assistant|>{% endif %}";

    [Fact]
    public void Render_strips_the_leading_bos_that_the_tokenizer_adds()
    {
        var t = new JinjaChatTemplate(Llama3Like, "<|begin|>", "<|eot|>");
        t.Render([new ChatMessage("user", "Hi")], addGenerationPrompt: true).Should().Be("<|user|>Hi<|eot|><|assistant|>");
        t.BosToken.Should().Be("<|begin|>");
        t.StopStrings.Should().Equal("<|eot|>");
        t.GenerationPromptOpensThinking.Should().BeFalse();
    }

    [Fact]
    public void Apply_gives_the_exact_hugging_face_text_with_bos_and_kwargs()
    {
        var t = new JinjaChatTemplate(Llama3Like + "{% if enable_thinking is false %}/no_think{% endif %}", "<|begin|>", null);
        using var messages = JsonDocument.Parse("""[{"role": "user", "content": "Hi"}]""");
        using var kwargs = JsonDocument.Parse("""{"enable_thinking": false}""");
        t.Apply(messages.RootElement, null, addGenerationPrompt: false, kwargs.RootElement)
            .Should().Be("<|begin|><|user|>Hi<|eot|>/no_think");
    }

    [Fact]
    public void A_generation_prompt_ending_in_an_open_think_block_is_detected()
    {
        var t = new JinjaChatTemplate("{% for m in messages %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}<|Assistant|><think>\n{% endif %}", null, null);
        t.GenerationPromptOpensThinking.Should().BeTrue();
    }

    [Fact]
    public void Template_errors_are_chat_template_exceptions()
    {
        var parse = () => new JinjaChatTemplate("{% if %}", null, null);
        parse.Should().Throw<ChatTemplateException>().WithMessage("*line 1*");
        var t = new JinjaChatTemplate("{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}", null, null);
        var render = () => t.Render([new ChatMessage("system", "x")], addGenerationPrompt: true);
        render.Should().Throw<ChatTemplateException>().WithMessage("*System role not supported*");
    }

    [Fact]
    public void Strftime_now_reads_the_injected_clock()
    {
        var t = new JinjaChatTemplate("{{ strftime_now('%d %b %Y') }}", null, null, () => new DateTime(2024, 7, 26));
        t.Render([], addGenerationPrompt: false).Should().Be("26 Jul 2024");
    }

    [SharedFact]
    public void A_real_template_renders_chat_messages()
    {
        var qwen3 = File.ReadAllText(Path.Combine(JinjaCases.Folder!, "templates", "qwen3.jinja"));
        var t = new JinjaChatTemplate(qwen3, null, "<|im_end|>");
        t.Render([new ChatMessage("system", "Be brief."), new ChatMessage("user", "Hi")], addGenerationPrompt: true)
            .Should().Be("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    }
}
