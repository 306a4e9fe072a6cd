using System.Text.RegularExpressions;
using Engine.Tests.Support;

namespace Engine.Tests.Cli;

/// <summary>`engine chat` as a user types into it: two turns over the tiny Qwen chat model; the second turn reuses the
/// first from the cache (the command is a thin layer over Session.ChatAsync).</summary>
public class ChatCliTests
{
    [Fact]
    public void Two_turns_answer_and_the_second_reuses_the_first_from_the_cache()
    {
        var model = TestPaths.Repo("Engine.Tests", "Fixtures", "qwen2-tiny-chat-Q8_0.gguf");
        var r = CliRunner.RunWithInput("What is the capital of France?\nAnd of Germany?\n/exit\n",
            "chat", "--model", model, "-n", "8", "--temperature", "0");
        r.ExitCode.Should().Be(0, r.Stderr);
        r.Stderr.Should().Contain("chat template: jinja");
        var turns = Regex.Matches(r.Stderr, @"\[(\d+) tokens, .* prompt (\d+) new tokens at .*, (\d+) reused from the cache\]");
        turns.Should().HaveCount(2, r.Stderr);
        int.Parse(turns[0].Groups[3].Value).Should().Be(0);
        // All of the first turn's prompt but its last token: the re-rendered conversation tokenizes the generation
        // prompt's closing newline together with the answer's leading newlines (the tiny model answers with newlines).
        int.Parse(turns[1].Groups[3].Value).Should().BeGreaterThanOrEqualTo(int.Parse(turns[0].Groups[2].Value) - 1,
            "the first turn's prompt is still in the cache");
        r.Stdout.Split("> ").Length.Should().Be(4, "three prompts: two turns and the /exit");
    }

    [Fact]
    public void An_unknown_template_is_a_usage_error()
    {
        var r = CliRunner.Run("chat", "--template", "nope");
        r.ExitCode.Should().Be(2);
        r.Stderr.Should().Contain("unknown template 'nope'");
    }
}
