using System.Text.Json;
using Engine.Tests.Support;

namespace Engine.Tests.Cli;

/// <summary>`engine perplexity` against llama-perplexity's numbers (Engine.Tests/Golden/perplexity, see PROVENANCE.md).</summary>
public class PerplexityCliTests
{
    static readonly string Story = TestPaths.Repo("Engine.Tests", "Golden", "perplexity", "story.txt");
    static readonly string Stories = TestPaths.Repo("models", "stories260K.gguf");

    [Fact]
    public void Json_gives_llama_perplexitys_value_and_the_scored_tokens()
    {
        using var reference = JsonDocument.Parse(File.ReadAllText(TestPaths.Repo("Engine.Tests", "Golden", "perplexity", "fx-llama-F32.ctx128.json")));
        double expected = reference.RootElement.GetProperty("perplexity").GetDouble();
        var r = CliRunner.Run("perplexity", "--model", TestPaths.Repo("Engine.Tests", "Fixtures", "fx-llama-F32.gguf"), "--file", Story, "--ctx", "128", "--json");
        r.ExitCode.Should().Be(0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        doc.RootElement.GetProperty("perplexity").GetDouble().Should().BeApproximately(expected, expected * 1e-4);
        doc.RootElement.GetProperty("tokens").GetInt32().Should().Be(reference.RootElement.GetProperty("scored_tokens").GetInt32());
    }

    [Fact]
    public void Text_mode_prints_the_running_estimate_per_chunk_and_the_final_estimate()
    {
        var r = CliRunner.Run("perplexity", "--model", Stories, "--file", Story, "--ctx", "128");
        r.ExitCode.Should().Be(0, r.Stderr);
        // llama-perplexity printed "[1]2.9806,[2]3.0190,[3]3.3897,[4]3.6735," and "Final estimate: PPL = 3.6735 +/- 0.37508".
        r.Stdout.Should().Contain("[1]2.9806,[2]3.0190,[3]3.3897,[4]3.6735,");
        r.Stdout.Should().Contain("Final estimate: PPL = 3.6735 +/- 0.3750");
    }

    [Fact]
    public void Bad_requests_say_what_is_wrong()
    {
        var missing = CliRunner.Run("perplexity", "--model", Stories, "--file", "no-such-text.txt");
        missing.ExitCode.Should().Be(2);
        missing.Stderr.Should().Contain("no such file: no-such-text.txt");

        var noFile = CliRunner.Run("perplexity", "--model", Stories);
        noFile.ExitCode.Should().Be(2);
        noFile.Stderr.Should().Contain("--file");

        var shortText = CliRunner.Run("perplexity", "--model", Stories, "--file", Story); // 624 tokens, default ctx 512
        shortText.ExitCode.Should().Be(1);
        shortText.Stderr.Should().Contain("the text is 624 tokens").And.Contain("needs at least 1024");
        shortText.Stderr.Should().NotContain("Parameter");

        var wide = CliRunner.Run("perplexity", "--model", Stories, "--file", Story, "--ctx", "100000");
        wide.ExitCode.Should().Be(2);
        wide.Stderr.Should().Contain("trained context of 2048");
    }
}
