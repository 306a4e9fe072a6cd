using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using Engine.Grammar;
using Engine.Tokenizers;

namespace Engine.Perf;

/// <summary>Grammar-constrained sampling on the Qwen vocabulary (151669 tokens, ../shared/models/qwen3-tokenizer):
/// JSON schema compile time, and the allowed-token mask along a JSON document, the first time (automaton and masks
/// built as the trie is walked) and again (masks cached per state). Quick harness:
/// dotnet run -c Release --project Perf -- grammar</summary>
[MemoryDiagnoser]
public class GrammarBenchmarks
{
    public const string Schema = """
        {"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":0,"maximum":150},
         "email":{"type":"string"},"tags":{"type":"array","items":{"type":"string"},"maxItems":5},
         "address":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"},
           "zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["street","city"]}},"required":["name","age"]}
        """;
    public const string Document = """{"name": "Ada Lovelace, Countess of Lovelace", "age": 36, "email": "ada@example.org", "tags": ["math", "poetry", "engines"], "address": {"street": "12 St James's Square", "city": "London", "zip": "12345"}}""";

    ITokenizer _tokenizer = null!;
    TokenTrie _trie = null!;
    GrammarConstraint _warm = null!;
    int[] _tokens = [];
    float[] _logits = [];

    static ITokenizer Qwen()
    {
        var shared = Environment.GetEnvironmentVariable("ENGINE_SHARED_DIR") ?? Path.Combine(AppContext.BaseDirectory, "../../../../../shared");
        return TokenizerFactory.FromTokenizerJson(Path.Combine(shared, "models", "qwen3-tokenizer", "tokenizer.json"));
    }

    [GlobalSetup]
    public void Setup()
    {
        _tokenizer = Qwen();
        _trie = TokenTrie.For(_tokenizer);
        _warm = GrammarConstraint.FromJsonSchema(Schema, _tokenizer);
        _tokens = _tokenizer.Encode(Document, false, false);
        _logits = new float[_trie.VocabSize];
        WalkDocument(); // every state's mask cached
    }

    /// <summary>JSON schema → GBNF → parsed grammar → automaton bound to the (cached) token trie.</summary>
    [Benchmark]
    public int CompileSchema() => new GrammarConstraint(Engine.Grammar.Grammar.Parse(JsonSchemaToGrammar.Convert(Schema)), _trie).VocabSize;

    /// <summary>Masks applied to 151k logits and the grammar advanced along the document, masks cached.</summary>
    [Benchmark]
    public int WalkDocument()
    {
        var m = _warm.CreateMatcher();
        int allowed = 0;
        foreach (var t in _tokens)
        {
            allowed += m.Apply(_logits);
            m.Accept(t);
        }
        return allowed;
    }

    public static void Quick()
    {
        var sw = Stopwatch.StartNew();
        var tok = Qwen();
        Console.WriteLine($"tokenizer loaded in {sw.ElapsedMilliseconds} ms");
        sw.Restart();
        var trie = TokenTrie.For(tok);
        Console.WriteLine($"token trie: {trie.VocabSize} tokens, {trie.NodeCount} nodes, built in {sw.Elapsed.TotalMilliseconds:F0} ms");
        var tokens = tok.Encode(Document, false, false);
        var logits = new float[trie.VocabSize];
        foreach (var (name, gbnf) in new[] { ("schema", JsonSchemaToGrammar.Convert(Schema)), ("json_object", JsonSchemaToGrammar.JsonObjectGrammar) })
        {
            double compile = double.MaxValue;
            GrammarConstraint constraint = null!;
            for (int r = 0; r < 5; r++)
            {
                sw.Restart();
                constraint = new GrammarConstraint(Engine.Grammar.Grammar.Parse(name == "schema" ? JsonSchemaToGrammar.Convert(Schema) : gbnf), trie);
                compile = Math.Min(compile, sw.Elapsed.TotalMilliseconds);
            }
            for (int pass = 0; pass < 3; pass++)
            {
                var m = constraint.CreateMatcher();
                var maskMs = new List<double>();
                var applyMs = new List<double>();
                foreach (var t in tokens)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    _ = m.AllowedTokens;
                    maskMs.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                    t0 = Stopwatch.GetTimestamp();
                    m.Apply(logits);
                    m.Accept(t);
                    applyMs.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                }
                var s = maskMs.Order().ToArray();
                Console.WriteLine($"{name}: compile {compile:F2} ms; pass {pass + 1} ({(pass == 0 ? "cold" : "cached")}): mask mean {maskMs.Average():F3} ms, median {s[s.Length / 2]:F3}, p90 {s[(int)(s.Length * 0.9)]:F3}, max {s[^1]:F3}; apply+accept mean {applyMs.Average():F3} ms over {tokens.Length} tokens; states {constraint.Automaton.StateCount}");
            }
        }
    }
}
