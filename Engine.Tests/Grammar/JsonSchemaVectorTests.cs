using System.Text.Json;
using System.Text.RegularExpressions;
using Engine.Grammar;
using Xunit.Abstractions;
using G = Engine.Grammar.Grammar;

namespace Engine.Tests.Grammar;

/// <summary>The schemas of llama.cpp's tests/test-json-schema-to-grammar.cpp: each either converts to exactly
/// llama.cpp's expected grammar (compared as that test does: trimmed, leading spaces removed) or is refused with an error
/// that names the keyword; the expected grammars all parse here.</summary>
public class JsonSchemaVectorTests(ITestOutputHelper output)
{
    sealed record Vector(string Status, string Name, string Schema, string Grammar);

    static List<Vector> Vectors() =>
        JsonSerializer.Deserialize<List<Vector>>(File.ReadAllText(Path.Combine(GrammarTestData.Dir, "json-schema-to-grammar.vectors.json")),
            new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;

    static string Trim(string s) => Regex.Replace(s.Trim(' ', '\n', '\r', '\t'), "(^|\n)[ \t]+", "$1");

    [Fact]
    public void Llama_cpp_vectors_match_or_are_refused_by_name()
    {
        int same = 0, refused = 0;
        var problems = new List<string>();
        foreach (var v in Vectors())
        {
            if (v.Status == "SUCCESS")
            {
                var parsed = () => G.Parse(v.Grammar);
                parsed.Should().NotThrow($"llama.cpp's expected grammar for '{v.Name}' must parse here");
            }
            string actual;
            try { actual = JsonSchemaToGrammar.Convert(v.Schema); }
            catch (GrammarException e)
            {
                output.WriteLine($"refused  {v.Name}: {e.Message}");
                if (v.Status == "SUCCESS")
                {
                    refused++;
                    if (!e.Message.Contains("unsupported keyword", StringComparison.Ordinal)) problems.Add($"{v.Name}: refused without naming a keyword: {e.Message}");
                }
                continue;
            }
            if (v.Status == "FAILURE") { problems.Add($"{v.Name}: llama.cpp refuses it, we converted it"); continue; }
            if (Trim(actual) == Trim(v.Grammar)) { same++; output.WriteLine($"same     {v.Name}"); }
            else problems.Add($"{v.Name}: grammar differs\n--- expected\n{Trim(v.Grammar)}\n--- actual\n{Trim(actual)}");
            var compiles = () => G.Parse(actual);
            compiles.Should().NotThrow(v.Name);
        }
        output.WriteLine($"{same} identical to llama.cpp, {refused} refused by keyword, {problems.Count} problems");
        problems.Should().BeEmpty();
    }

    [Theory]
    [InlineData("{\"type\":\"string\",\"not\":{\"const\":\"a\"}}", "'not'")]
    [InlineData("{\"type\":\"array\",\"uniqueItems\":true}", "'uniqueItems'")]
    [InlineData("{\"type\":\"object\",\"patternProperties\":{}}", "'patternProperties'")]
    [InlineData("{\"type\":\"number\",\"multipleOf\":2}", "'multipleOf'")]
    [InlineData("{\"type\":\"string\",\"format\":\"email\"}", "'format'")]
    [InlineData("{\"type\":\"number\",\"minimum\":2}", "'minimum'")]
    [InlineData("{\"type\":\"string\",\"pattern\":\"^(?=a)a$\"}", "'pattern'")]
    [InlineData("{\"$ref\":\"https://example.com/x.json\"}", "only references into the same document")]
    [InlineData("{\"type\":123}", "type must be")]
    [InlineData("not json", "not valid JSON")]
    public void Unsupported_keywords_are_named(string schema, string expected) =>
        Assert.Throws<GrammarException>(() => JsonSchemaToGrammar.Convert(schema)).Message.Should().Contain(expected);

    [Fact]
    public void Json_object_mode_accepts_any_object_only()
    {
        var g = G.Parse(JsonSchemaToGrammar.JsonObjectGrammar);
        GrammarTestData.Matches(g, "{\"a\": [1, {\"b\": null}], \"c\": \"d\"}").Should().BeTrue();
        GrammarTestData.Matches(g, "{}").Should().BeTrue();
        GrammarTestData.Matches(g, "[1]").Should().BeFalse();
        GrammarTestData.Matches(g, "\"x\"").Should().BeFalse();
    }

    [Theory]
    [InlineData("{\"type\":[\"integer\",\"null\"]}", "null", true)]
    [InlineData("{\"type\":\"integer\",\"nullable\":true}", "null", true)]
    [InlineData("{\"type\":\"integer\",\"nullable\":true}", "12", true)]
    [InlineData("{\"type\":\"integer\",\"minimum\":-5,\"maximum\":30}", "-5", true)]
    [InlineData("{\"type\":\"integer\",\"minimum\":-5,\"maximum\":30}", "-6", false)]
    [InlineData("{\"type\":\"integer\",\"minimum\":-5,\"maximum\":30}", "31", false)]
    [InlineData("{\"type\":\"string\",\"format\":\"date\"}", "\"2024-02-29\"", true)]
    [InlineData("{\"type\":\"string\",\"format\":\"date\"}", "\"2024-13-01\"", false)]
    [InlineData("{\"type\":\"string\",\"pattern\":\"^[a-z]{2}-[0-9]+$\"}", "\"ab-12\"", true)]
    [InlineData("{\"type\":\"string\",\"pattern\":\"^[a-z]{2}-[0-9]+$\"}", "\"abc-12\"", false)]
    [InlineData("{\"$defs\":{\"p\":{\"type\":\"boolean\"}},\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/p\"},\"maxItems\":2}", "[true, false]", true)]
    [InlineData("{\"$defs\":{\"p\":{\"type\":\"boolean\"}},\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/p\"},\"maxItems\":2}", "[true, false, true]", false)]
    public void Converted_grammars_constrain(string schema, string text, bool valid) =>
        GrammarTestData.Matches(G.Parse(JsonSchemaToGrammar.Convert(schema)), text).Should().Be(valid);
}
