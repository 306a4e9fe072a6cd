using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Grammar;
using Engine.Models;
using Engine.Sampling;
using Engine.Tests.Support;
using Xunit.Abstractions;

namespace Engine.Tests.Grammar;

/// <summary>Generation under a grammar with real forward passes: the trained stories260K and the random-weight
/// fx-qwen2-Q8_0 fixture (same 512-token vocabulary). Every output must be a sentence of the grammar; for 50 JSON
/// schemas × greedy and two seeds, every output must parse (System.Text.Json) and validate against its schema.</summary>
public class GrammarGenerationTests(ITestOutputHelper output)
{
    static readonly Lazy<LoadedModel> Stories = new(() => LoadedModel.Open(TestPaths.Repo("models", "stories260K.gguf")));
    static readonly Lazy<LoadedModel> Fixture = new(() => LoadedModel.Open(TestPaths.Repo("Engine.Tests", "Fixtures", "fx-qwen2-Q8_0.gguf")));

    const int Budget = 1500;

    /// <summary>Prompt, then sample until end of generation or the budget. Returns the bytes generated (EOG excluded).</summary>
    static (string Text, bool Finished, int Tokens) Generate(LoadedModel loaded, GrammarConstraint grammar, SamplerOptions options, int budget = Budget)
    {
        var model = loaded.Model;
        var tok = loaded.Tokenizer;
        var prompt = tok.Encode("Once upon a time", addSpecial: true, parseSpecial: false);
        using var cache = model.CreateCache(prompt.Length + budget + 1);
        var logits = new float[model.Config.VocabSize];
        model.Forward(prompt, 0, cache, logits);
        var sampler = new Sampler(options with { Grammar = grammar }, logits.Length);
        var recent = new List<int>(prompt);
        var bytes = new List<byte>();
        for (int i = 0; i < budget; i++)
        {
            int t = sampler.Sample(logits, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(recent));
            if (tok.IsEndOfGeneration(t))
            {
                sampler.Grammar!.IsEnded.Should().BeTrue();
                return (Encoding.UTF8.GetString([.. bytes]), true, i);
            }
            bytes.AddRange(tok.TokenBytes(t));
            recent.Add(t);
            model.Forward([t], prompt.Length + i, cache, logits);
        }
        return (Encoding.UTF8.GetString([.. bytes]), false, budget);
    }

    static readonly SamplerOptions[] Samplings =
    [
        SamplerOptions.Greedy,
        new() { Temperature = 0.8f, TopK = 40, TopP = 0.95f, MinP = 0.05f, Seed = 1 },
        new() { Temperature = 1.0f, Seed = 2, RepetitionPenalty = 1.1f },
    ];

    [Theory]
    [InlineData("json")]
    [InlineData("arithmetic")]
    [InlineData("list")]
    [InlineData("chess")]
    public void Generated_text_is_a_sentence_of_the_grammar(string name)
    {
        var gbnf = GrammarTestData.Gbnf(name);
        var g = Engine.Grammar.Grammar.Parse(gbnf);
        foreach (var loaded in new[] { Stories.Value, Fixture.Value })
        {
            var constraint = GrammarConstraint.FromGbnf(gbnf, loaded.Tokenizer);
            foreach (var options in Samplings)
            {
                var (text, finished, tokens) = Generate(loaded, constraint, options, 300);
                output.WriteLine($"{name} seed {options.Seed}: {tokens} tokens, finished {finished}: {text.Replace("\n", "\\n")[..Math.Min(120, text.Length)]}");
                var reference = new ReferenceMatcher(g);
                reference.AcceptBytes(Encoding.UTF8.GetBytes(text)).Should().BeTrue($"\"{text}\" must follow {name}");
                if (finished) reference.IsComplete.Should().BeTrue();
            }
        }
    }

    /// <summary>50 schemas: a handful written out ($ref, anyOf, allOf, type arrays, nullable, tuples, formats,
    /// patterns) and the rest drawn at random (nested objects, bounded arrays, enums, integer ranges, numbers,
    /// optional and required fields). Strings are bounded (maxLength, format, pattern or enum) so that a random model
    /// finishes: with an unbounded string a random-weight model may never close it (llama.cpp has the same issue).</summary>
    internal static List<string> Schemas()
    {
        var list = new List<string>
        {
            """{"type":"object","properties":{"id":{"type":"string","format":"uuid"},"when":{"type":"string","format":"date-time"}},"required":["id","when"]}""",
            """{"type":"object","properties":{"d":{"type":"string","format":"date"},"t":{"type":"string","format":"time"}},"required":["d"]}""",
            """{"$defs":{"pt":{"type":"object","properties":{"x":{"type":"integer","minimum":-10,"maximum":10},"y":{"type":"integer","minimum":0,"maximum":99}},"required":["x","y"]}},"type":"array","items":{"$ref":"#/$defs/pt"},"minItems":1,"maxItems":3}""",
            """{"definitions":{"c":{"enum":["red","green","blue"]}},"type":"object","properties":{"fg":{"$ref":"#/definitions/c"},"bg":{"$ref":"#/definitions/c"}},"required":["fg"]}""",
            """{"anyOf":[{"type":"integer","minimum":1,"maximum":5},{"type":"string","maxLength":4},{"type":"null"}]}""",
            """{"type":"object","allOf":[{"type":"object","properties":{"a":{"type":"boolean"}},"required":["a"]},{"type":"object","properties":{"b":{"const":"x"}},"required":["b"]}]}""",
            """{"type":["string","null"],"maxLength":5}""",
            """{"type":"integer","nullable":true,"minimum":100,"maximum":2000}""",
            """{"type":"array","prefixItems":[{"type":"string","pattern":"^[A-Z][a-z]{1,4}$"},{"type":"integer","exclusiveMinimum":0,"exclusiveMaximum":10},{"type":"boolean"}]}""",
            """{"type":"object","properties":{"code":{"type":"string","pattern":"^[0-9]{3}-[A-F]{2}$"},"n":{"type":"number"}},"required":["code","n"]}""",
            """{"type":"object","properties":{"name":{"type":"string","minLength":2,"maxLength":6}},"additionalProperties":false,"required":["name"]}""",
            """{"type":"object","properties":{"tags":{"type":"array","items":{"type":"string","maxLength":3},"minItems":2,"maxItems":2}},"required":["tags"]}""",
            """{"oneOf":[{"type":"object","properties":{"kind":{"const":"a"},"v":{"type":"integer","minimum":0,"maximum":9}},"required":["kind","v"]},{"type":"object","properties":{"kind":{"const":"b"}},"required":["kind"]}]}""",
            """{"enum":[1,"two",null,true,3.5]}""",
        };
        var rng = new Random(20251205);
        while (list.Count < 50) list.Add(RandomSchema(rng, 0).ToJsonString());
        return list;
    }

    static JsonObject RandomSchema(Random rng, int depth)
    {
        int kind = rng.Next(depth >= 2 ? 7 : 9);
        switch (kind)
        {
            case 0:
                return new JsonObject { ["type"] = "string", ["maxLength"] = rng.Next(0, 7), ["minLength"] = rng.Next(0, 1) };
            case 1:
            {
                string[] formats = ["date", "time", "date-time", "uuid"];
                string[] patterns = ["^[a-z]{1,4}$", "^[0-9]{2}(-[0-9]{2})?$", "^(yes|no|maybe)$", "^[A-Z]+[0-9]?$".Replace("+", "{1,3}")];
                return rng.Next(2) == 0
                    ? new JsonObject { ["type"] = "string", ["format"] = formats[rng.Next(formats.Length)] }
                    : new JsonObject { ["type"] = "string", ["pattern"] = patterns[rng.Next(patterns.Length)] };
            }
            case 2:
            {
                var o = new JsonObject { ["type"] = "integer" };
                int lo = rng.Next(-500, 500);
                if (rng.Next(3) > 0) o["minimum"] = lo;
                if (rng.Next(3) > 0) o["maximum"] = lo + rng.Next(0, 2000);
                return o;
            }
            case 3: return new JsonObject { ["type"] = "number" };
            case 4: return new JsonObject { ["type"] = "boolean" };
            case 5:
            {
                var values = new JsonArray();
                int n = rng.Next(1, 5);
                for (int i = 0; i < n; i++) values.Add(rng.Next(3) switch { 0 => JsonValue.Create("v" + i), 1 => JsonValue.Create(i * 7 - 3), _ => JsonValue.Create(i % 2 == 0) });
                return new JsonObject { ["enum"] = values };
            }
            case 6: return new JsonObject { ["type"] = new JsonArray("integer", "null"), ["minimum"] = 0, ["maximum"] = 50 };
            case 7:
            {
                int min = rng.Next(0, 3);
                return new JsonObject { ["type"] = "array", ["items"] = RandomSchema(rng, depth + 1), ["minItems"] = min, ["maxItems"] = min + rng.Next(0, 3) };
            }
            default:
            {
                var props = new JsonObject();
                var required = new JsonArray();
                int n = rng.Next(1, 4);
                for (int i = 0; i < n; i++)
                {
                    var name = "p" + i + (rng.Next(2) == 0 ? "_x" : "");
                    props[name] = RandomSchema(rng, depth + 1);
                    if (rng.Next(2) == 0) required.Add(name);
                }
                var o = new JsonObject { ["type"] = "object", ["properties"] = props, ["required"] = required };
                if (rng.Next(4) == 0) o["additionalProperties"] = false;
                return o;
            }
        }
    }

    [Fact]
    public void Fifty_schemas_times_three_samplings_give_valid_json()
    {
        var schemas = Schemas();
        schemas.Should().HaveCount(50);
        int valid = 0, unfinished = 0;
        var failures = new List<string>();
        foreach (var (loaded, label) in new[] { (Fixture.Value, "fx-qwen2"), (Stories.Value, "stories260K") })
        {
            for (int i = 0; i < schemas.Count; i++)
            {
                var constraint = GrammarConstraint.FromJsonSchema(schemas[i], loaded.Tokenizer);
                using var schemaDoc = JsonDocument.Parse(schemas[i]);
                foreach (var options in Samplings)
                {
                    var (text, finished, tokens) = Generate(loaded, constraint, options);
                    if (!finished) { unfinished++; failures.Add($"{label} schema {i} seed {options.Seed}: no end within {Budget} tokens: {text[..Math.Min(200, text.Length)]}"); continue; }
                    try
                    {
                        using var doc = JsonDocument.Parse(text);
                        if (MiniSchemaValidator.Validate(schemaDoc.RootElement, doc.RootElement) is { } why) failures.Add($"{label} schema {i} seed {options.Seed}: {why}: {text}");
                        else valid++;
                    }
                    catch (Exception e) when (e is JsonException or InvalidOperationException)
                    {
                        failures.Add($"{label} schema {i} seed {options.Seed}: not JSON ({e.Message}): {text}");
                    }
                    if (i < 3 || i % 10 == 0) output.WriteLine($"{label} {i} seed {options.Seed} ({tokens} tokens): {text.Replace("\n", "\\n")}");
                }
            }
        }
        output.WriteLine($"{valid} valid, {unfinished} unfinished, {failures.Count} failures");
        foreach (var f in failures) output.WriteLine(f);
        failures.Should().BeEmpty();
    }

    [Fact]
    public void Sampler_without_grammar_is_unchanged_and_a_dead_end_throws()
    {
        var tok = Stories.Value.Tokenizer;
        var logits = new float[tok.VocabSize];
        new Random(3).NextBytes(new byte[1]);
        for (int i = 0; i < logits.Length; i++) logits[i] = (i * 37 % 101) / 10f;
        new Sampler(SamplerOptions.Greedy, logits.Length).Sample(logits, []).Should().Be(Array.IndexOf(logits, logits.Max()));

        // Greedy under a grammar: the best allowed token, and the grammar advances.
        var constraint = GrammarConstraint.FromGbnf("root ::= \"x\" \"y\"", tok);
        var sampler = new Sampler(SamplerOptions.Greedy with { Grammar = constraint }, logits.Length);
        int first = sampler.Sample(logits, []);
        tok.TokenBytes(first).Should().Equal("x"u8.ToArray());
        int second = sampler.Sample(logits, []);
        tok.TokenBytes(second).Should().Equal("y"u8.ToArray());
        sampler.Grammar!.IsComplete.Should().BeTrue();
        tok.IsEndOfGeneration(sampler.Sample(logits, [])).Should().BeTrue("only end of generation is left");
        Assert.Throws<GrammarException>(() => sampler.Sample(logits, []));
    }
}
