using System.Text.Json;
using Engine.Formats;
using Engine.Tests.Support;

namespace Engine.Tests.Api;

/// <summary>A Hugging Face folder through the public API: its chat template comes from tokenizer_config.json (a plain
/// string or Hugging Face's list of named templates), and a folder without tokenizer.json loads and says what is missing
/// only when text is asked of it.</summary>
public sealed class HuggingFaceLoadTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("engine-hf-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    void CopyFixture()
    {
        var source = TestPaths.Shared("fixtures", "hf", "fx-qwen2-F32-hf")!;
        foreach (var name in new[] { "config.json", "model.safetensors" })
            File.Copy(Path.Combine(source, name), Path.Combine(_folder, name));
    }

    const string ChatMl = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n'}}{% endfor %}";

    [SharedFact]
    public void The_chat_template_comes_from_tokenizer_config_json()
    {
        CopyFixture();
        var config = new Dictionary<string, object>
        {
            ["chat_template"] = new object[] { new { name = "tool_use", template = "{{ tools }}" }, new { name = "default", template = ChatMl } },
        };
        File.WriteAllText(Path.Combine(_folder, "tokenizer_config.json"), JsonSerializer.Serialize(config));
        using var model = Model.Load(_folder);
        model.Info.Architecture.Should().Be("qwen2");
        model.Info.ChatTemplate.Should().Be(ChatMl, "the default of the named templates");
        model.Info.ChatFormat.Should().Be("jinja", "the model's own template is run");
    }

    [SharedFact]
    public void A_folder_without_tokenizer_json_loads_and_asks_for_one_only_when_text_is_needed()
    {
        CopyFixture();
        File.WriteAllText(Path.Combine(_folder, "tokenizer_config.json"), "{ \"chat_template\": 42 }");
        using var model = Model.Load(_folder);
        model.Info.ChatTemplate.Should().BeNull("a template that is not text is no template");
        model.Info.ChatFormat.Should().Be("chatml", "qwen2 without a template falls back to ChatML");
        FluentActions.Invoking(() => model.Tokenize("Hello")).Should().Throw<ModelFormatException>().WithMessage("*tokenizer.json*");
    }
}
