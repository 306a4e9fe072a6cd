using System.Diagnostics;
using System.Text;
using Engine.Grammar;
using Engine.Sampling;
using Engine.Tests.Support;
using Engine.Tokenizers;
using Xunit.Abstractions;

namespace Engine.Tests.Grammar;

/// <summary>Mask time on the Qwen vocabulary (151665 tokens) along a JSON document, and schema compile time. Figures are
/// printed; the bounds only catch a runaway (a full-trie walk per token without caching) on a loaded CI box.</summary>
public class GrammarSpeedTests(ITestOutputHelper output)
{
    const string Schema = """
        {"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":0,"maximum":150},
         "email":{"type":"string"},"tags":{"type":"array","items":{"type":"string"},"maxItems":5},
         "address":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"},
           "zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["street","city"]}},"required":["name","age"]}
        """;
    const string Document = """{"name": "Ada Lovelace, Countess of Lovelace", "age": 36, "email": "ada@example.org", "tags": ["math", "poetry", "engines"], "address": {"street": "12 St James's Square", "city": "London", "zip": "12345"}}""";

    [SharedFact]
    public void Qwen_json_schema_masks_are_fast()
    {
        var tok = TokenizerFactory.FromTokenizerJson(TestPaths.Shared("models", "qwen3-tokenizer", "tokenizer.json")!);
        var sw = Stopwatch.StartNew();
        var trie = TokenTrie.For(tok);
        double trieMs = sw.Elapsed.TotalMilliseconds;
        sw.Restart();
        var gbnf = JsonSchemaToGrammar.Convert(Schema);
        double convertMs = sw.Elapsed.TotalMilliseconds;
        sw.Restart();
        var constraint = new GrammarConstraint(Engine.Grammar.Grammar.Parse(gbnf), trie);
        double compileMs = sw.Elapsed.TotalMilliseconds;
        var tokens = tok.Encode(Document, addSpecial: false, parseSpecial: false);

        double[] Run()
        {
            var m = constraint.CreateMatcher();
            var times = new double[tokens.Length + 1];
            for (int i = 0; i <= tokens.Length; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                _ = m.AllowedTokens;
                times[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                if (i < tokens.Length) m.Accept(tokens[i]);
            }
            m.IsComplete.Should().BeTrue();
            return times;
        }
        var cold = Run();
        var warm = Run();
        static string Stats(double[] t) { var s = t.Order().ToArray(); return $"mean {t.Average():F3} ms, median {s[s.Length / 2]:F3}, p90 {s[(int)(s.Length * 0.9)]:F3}, max {s[^1]:F3}"; }
        output.WriteLine($"vocab {trie.VocabSize}, trie {trie.NodeCount} nodes built in {trieMs:F0} ms; schema->GBNF {convertMs:F2} ms, parse+automaton {compileMs:F2} ms");
        output.WriteLine($"{tokens.Length} tokens; first generation (cold): {Stats(cold)}");
        output.WriteLine($"second generation (masks cached): {Stats(warm)}; automaton states {constraint.Automaton.StateCount}");

        // The sampler's added cost per step: mask applied to 151k logits plus the grammar's advance.
        var logits = new float[trie.VocabSize];
        var rng = new Random(1);
        for (int i = 0; i < logits.Length; i++) logits[i] = (float)rng.NextDouble() * 10;
        var plain = new Sampler(SamplerOptions.LlamaCppDefaults with { Seed = 1 }, logits.Length);
        var constrained = new Sampler(SamplerOptions.LlamaCppDefaults with { Seed = 1, Grammar = GrammarConstraint.JsonObject(tok) }, logits.Length);
        for (int i = 0; i < 20; i++) plain.Sample(logits, []);
        sw.Restart();
        for (int i = 0; i < 50; i++) plain.Sample(logits, []);
        double plainMs = sw.Elapsed.TotalMilliseconds / 50;
        sw.Restart();
        int steps = 0;
        for (; steps < 50 && !constrained.Grammar!.IsEnded; steps++) constrained.Sample(logits, []);
        double constrainedMs = sw.Elapsed.TotalMilliseconds / Math.Max(1, steps);
        output.WriteLine($"Sampler.Sample on 151k logits: {plainMs:F3} ms plain, {constrainedMs:F3} ms under json_object ({steps} steps, cold automaton)");

        warm.Average().Should().BeLessThan(20, "cached masks cost a lookup");
    }
}
