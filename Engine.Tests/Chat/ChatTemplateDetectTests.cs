using System.Text.Json;
using Engine.Chat;
using Engine.Tests.Support;

namespace Engine.Tests.Chat;

public class ChatTemplateDetectTests
{
    static string? RealTemplate(string folder)
    {
        var path = TestPaths.Shared("models", folder, "tokenizer_config.json");
        if (path is null) return null;
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.GetProperty("chat_template").GetString();
    }

    [SharedFact]
    public void Real_Qwen3_template_is_detected_as_qwen3()
    {
        var jinja = RealTemplate("qwen3-tokenizer");
        jinja.Should().NotBeNull("../shared/models/qwen3-tokenizer/tokenizer_config.json is part of the shared models");
        var match = ChatTemplates.Detect(jinja!, "qwen3");
        match.Template.Should().BeOfType<Qwen3Template>();
        match.Rule.Should().Contain("<|im_start|>");
    }

    [SharedFact]
    public void Real_Llama3_template_is_detected_as_llama3()
    {
        var jinja = RealTemplate("llama3-tokenizer");
        jinja.Should().NotBeNull("../shared/models/llama3-tokenizer/tokenizer_config.json is part of the shared models");
        var match = ChatTemplates.Detect(jinja!, "llama");
        match.Template.Should().BeOfType<Llama3Template>();
        match.Rule.Should().Contain("<|eot_id|>");
    }

    [Fact]
    public void Marker_strings_pick_llama2_deepseek_and_chatml()
    {
        ChatTemplates.Detect("{{ bos_token + '[INST] ' + '<<SYS>>\\n' }}", "llama").Template.Should().BeOfType<Llama2Template>();

        var r1 = ChatTemplates.Detect("{{'<｜User｜>' + message['content']}}{{'<｜Assistant｜><think>\\n'}}", "qwen2");
        r1.Template.Should().BeOfType<DeepSeekR1Template>();
        r1.Template.GenerationPromptOpensThinking.Should().BeTrue();
        r1.Rule.Should().Contain("deepseek-r1");

        var v3 = ChatTemplates.Detect("{{'<｜User｜>' + m}}{{'<｜Assistant｜>'}}", null);
        v3.Template.GenerationPromptOpensThinking.Should().BeFalse();

        ChatTemplates.Detect("{{'<|im_start|>' + role}}", "llama").Template.Should().BeOfType<ChatMlTemplate>();
        var qwen25 = ChatTemplates.Detect("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.", "qwen2");
        ((ChatMlTemplate)qwen25.Template).DefaultSystemPrompt.Should().Be(ChatMlTemplate.Qwen25DefaultSystemPrompt);
    }

    [Fact]
    public void Without_a_recognizable_template_architecture_and_vocabulary_decide()
    {
        ChatTemplates.Detect(null, "qwen3").Template.Should().BeOfType<Qwen3Template>();
        ChatTemplates.Detect("", "qwen2").Template.Should().BeOfType<ChatMlTemplate>();
        var llama3 = ChatTemplates.Detect("{% unknown %}", "llama", token => token == "<|eot_id|>");
        llama3.Template.Should().BeOfType<Llama3Template>();
        llama3.Rule.Should().StartWith("template not recognized");
        var fallback = ChatTemplates.Detect(null, "llama", _ => false);
        fallback.Template.Should().BeOfType<ChatMlTemplate>();
        fallback.Rule.Should().Contain("no template in metadata");
    }

    [Fact]
    public void Templates_can_be_chosen_by_name()
    {
        ChatTemplates.ByName("LLAMA3").Should().BeOfType<Llama3Template>();
        ChatTemplates.ByName("deepseek-r1").Should().BeOfType<DeepSeekR1Template>();
        ChatTemplates.ByName("nope").Should().BeNull();
    }
}
