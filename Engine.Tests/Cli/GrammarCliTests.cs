using System.Text.Json;
using Engine.Tests.Support;

namespace Engine.Tests.Cli;

/// <summary>`engine run` under a grammar or a JSON schema (llama.cpp's --grammar-file and --json-schema), and both kinds of
/// error reported before anything is generated.</summary>
public class GrammarCliTests
{
    [Fact]
    public void The_output_follows_the_grammar()
    {
        var grammar = Path.Combine(Path.GetTempPath(), $"engine-grammar-{Guid.NewGuid():N}.gbnf");
        File.WriteAllText(grammar, "root ::= \" there was a \" (\"cat\" | \"dog\") \".\"\n");
        try
        {
            var r = CliRunner.Run("run", "Once upon a time", "-n", "40", "--grammar-file", grammar, "--seed", "1");
            r.ExitCode.Should().Be(0, r.Stderr);
            r.Stdout.Should().MatchRegex("^Once upon a time there was a (cat|dog)\\.$");
        }
        finally { File.Delete(grammar); }
    }

    [Fact]
    public void The_output_is_valid_for_the_schema()
    {
        var r = CliRunner.Run("run", "Hi", "-n", "60", "--seed", "2", "--json-schema",
            """{"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["n"], "additionalProperties": false}""");
        r.ExitCode.Should().Be(0, r.Stderr);
        using var json = JsonDocument.Parse(r.Stdout["Hi".Length..]);
        json.RootElement.GetProperty("n").GetInt32().Should().BeInRange(0, 9);
    }

    [Theory]
    [InlineData("--grammar", "root ::= foo", "*line 1, column 10*undefined rule 'foo'*")]
    [InlineData("--json-schema", """{"type": "object", "patternProperties": {}}""", "*unsupported keyword 'patternProperties'*")]
    public void A_bad_grammar_or_schema_is_reported_before_any_output(string option, string value, string message)
    {
        var r = CliRunner.Run("run", "Hi", option, value);
        r.ExitCode.Should().NotBe(0);
        r.Stdout.Should().BeEmpty();
        r.Stderr.Should().Match(message);
    }
}
