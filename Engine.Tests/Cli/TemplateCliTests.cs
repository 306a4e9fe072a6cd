using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Tests.Chat;
using Engine.Tests.Support;

namespace Engine.Tests.Cli;

/// <summary>`engine template`: one case on stdin, the exact render on stdout (nothing added), exit 1 with a message
/// on stderr when the template refuses the conversation.</summary>
public class TemplateCliTests
{
    [Fact]
    public void Prints_the_render_exactly()
    {
        var input = """
            {"template": "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}\n",
             "bos_token": "<s>", "eos_token": null, "now": "2024-07-26T00:00:00",
             "kwargs": {"add_generation_prompt": true}, "messages": [{"role": "user", "content": " Grüß dich "}]}
            """;
        var r = CliRunner.RunWithInput(input, "template");
        r.ExitCode.Should().Be(0, r.Stderr);
        r.Stdout.Should().Be("<s><user>Grüß dich\n<assistant>");
    }

    [Fact]
    public void A_template_error_exits_1_with_the_message()
    {
        var r = CliRunner.RunWithInput("""{"template": "{{ raise_exception('System role not supported') }}", "messages": []}""", "template");
        r.ExitCode.Should().Be(1);
        r.Stdout.Should().BeEmpty();
        r.Stderr.Should().Contain("System role not supported");
    }

    [SharedFact]
    public void Fixture_cases_through_the_command_with_a_template_file()
    {
        foreach (var id in new[] { "qwen3/tool-call-with-reasoning", "llama-3.2-instruct/tools-in-user-message", "gemma-2-it/reject-system" })
        {
            var c = JinjaCases.Case(id);
            var input = JsonNode.Parse(c.GetRawText())!.AsObject();
            input.Remove("expected");
            input.Remove("expected_error");
            var file = Path.Combine(JinjaCases.Folder!, "templates", c.GetProperty("template").GetString() + ".jinja");
            var r = CliRunner.RunWithInput(input.ToJsonString(), "template", "--template-file", file);
            if (c.TryGetProperty("expected", out var expected))
            {
                r.ExitCode.Should().Be(0, r.Stderr);
                r.Stdout.Should().Be(expected.GetString(), id);
            }
            else
            {
                r.ExitCode.Should().Be(1, id);
                r.Stderr.Should().NotBeEmpty();
            }
        }
    }
}
