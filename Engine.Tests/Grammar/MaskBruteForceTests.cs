using System.Diagnostics;
using System.Text;
using Engine.Formats.Gguf;
using Engine.Grammar;
using Engine.Tests.Support;
using Engine.Tests.Tokenizers;
using Engine.Tokenizers;
using Xunit.Abstractions;
using G = Engine.Grammar.Grammar;

namespace Engine.Tests.Grammar;

/// <summary>The trie-walked mask (fast path) against the brute force (every token's bytes fed to a copy of the
/// reference matcher), on grammar states met while walking valid strings token by token, with real vocabularies:
/// stories260K (512, SentencePiece with byte tokens), Llama 2 (32000) and Qwen (151665, byte-level BPE).</summary>
public class MaskBruteForceTests(ITestOutputHelper output)
{
    static readonly Lazy<ITokenizer> Stories = new(() => Gguf(TestPaths.Repo("models", "stories260K.gguf")));
    static readonly Lazy<ITokenizer> Llama2 = new(() => Gguf(TestPaths.Shared("models", "ggml-vocab", "ggml-vocab-llama-spm.gguf")!));
    static readonly Lazy<ITokenizer> Qwen = new(() => TokenizerFactory.FromTokenizerJson(TestPaths.Shared("models", "qwen3-tokenizer", "tokenizer.json")!));

    static ITokenizer Gguf(string path)
    {
        using var f = GgufFile.Open(path);
        return TokenizerFactory.FromGguf(f.Metadata);
    }

    const string PersonSchema = """
        {"type":"object","properties":{
          "name":{"type":"string","maxLength":20},
          "age":{"type":"integer","minimum":0,"maximum":150},
          "email":{"type":"string","format":"date"},
          "tags":{"type":"array","items":{"enum":["a","b","ü"]},"maxItems":3},
          "ok":{"type":"boolean"}},
         "required":["name","age"]}
        """;

    public static TheoryData<string, string> Cases => new()
    {
        { "json", "{\"key\": [1, -2.5e3, \"Grüße, 世界 😀\\n\"], \"b\": {\"c\": null, \"d\": true}}" },
        { "schema", "{\"name\": \"Zoë 李\", \"age\": 42, \"tags\": [\"ü\", \"a\"], \"ok\": false}" },
        { "japanese", "こんにちは世界、元気ですか" },
        { "arithmetic", "(12+x1)*3= y\n" },
        { "c", "int main(int argc){return argc*2;}" },
    };

    static G GrammarOf(string name) => name == "schema" ? G.Parse(JsonSchemaToGrammar.Convert(PersonSchema)) : G.Parse(GrammarTestData.Gbnf(name));

    /// <summary>Greedy longest-match tokenization over the trie, so any byte string (even splitting a character) works.</summary>
    static List<int> GreedyTokens(TokenTrie trie, byte[] text)
    {
        var result = new List<int>();
        int at = 0;
        while (at < text.Length)
        {
            int best = -1, bestLen = 0;
            int i = 0, d = 0;
            while (i < trie.NodeCount && at + d < text.Length)
            {
                if (trie.Depth[i] != d) { if (trie.Depth[i] < d) break; i = trie.Next[i]; continue; }
                if (trie.Byte[i] != text[at + d]) { i = trie.Next[i]; continue; }
                if (trie.TokenStart[i + 1] > trie.TokenStart[i]) { best = trie.TokenIds[trie.TokenStart[i]]; bestLen = d + 1; }
                i++;
                d++;
            }
            if (best < 0) throw new InvalidOperationException($"no token for byte {text[at]:X2}");
            result.Add(best);
            at += bestLen;
        }
        return result;
    }

    void Check(ITokenizer tokenizer, string grammarName, string text, int maxStates)
    {
        var trie = TokenTrie.For(tokenizer);
        var g = GrammarOf(grammarName);
        var constraint = new GrammarConstraint(g, trie);
        var matcher = constraint.CreateMatcher();
        var reference = new ReferenceMatcher(g);
        var tokens = GreedyTokens(trie, Encoding.UTF8.GetBytes(text));
        int stride = Math.Max(1, (tokens.Count + 1) / maxStates);
        int compared = 0;
        double fastMs = 0, bruteMs = 0;
        for (int step = 0; step <= tokens.Count; step++)
        {
            if (step % stride == 0 || step == tokens.Count)
            {
                var sw = Stopwatch.StartNew();
                var fast = matcher.AllowedTokens.ToArray();
                fastMs += sw.Elapsed.TotalMilliseconds;
                sw.Restart();
                var brute = GrammarAutomaton.BruteForceMask(reference, trie);
                bruteMs += sw.Elapsed.TotalMilliseconds;
                for (int w = 0; w < brute.Length; w++)
                    if (fast[w] != brute[w])
                    {
                        int id = w * 64 + System.Numerics.BitOperations.TrailingZeroCount(fast[w] ^ brute[w]);
                        Assert.Fail($"{grammarName} step {step}: token {id} ({tokenizer.PieceText(id)}) fast={(fast[w] >> id & 1) == 1} brute={(brute[w] >> id & 1) == 1}");
                    }
                compared++;
            }
            if (step == tokens.Count) break;
            matcher.IsAllowed(tokens[step]).Should().BeTrue($"step {step} token {tokens[step]} is part of a valid string");
            matcher.Accept(tokens[step]);
            reference.AcceptBytes(trie.Bytes[tokens[step]]).Should().BeTrue();
        }
        matcher.IsComplete.Should().BeTrue();
        output.WriteLine($"{grammarName}: {tokens.Count} tokens, {compared} states equal; fast {fastMs / compared:F2} ms/state (cold), brute {bruteMs / compared:F0} ms/state");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Stories_vocabulary_masks_equal_brute_force(string grammar, string text) => Check(Stories.Value, grammar, text, 1000);

    [SharedTheory]
    [MemberData(nameof(Cases))]
    public void Llama2_vocabulary_masks_equal_brute_force(string grammar, string text) => Check(Llama2.Value, grammar, text, 8);

    [SharedTheory]
    [MemberData(nameof(Cases))]
    public void Qwen_vocabulary_masks_equal_brute_force(string grammar, string text) => Check(Qwen.Value, grammar, text, 4);

    [Fact]
    public void End_of_generation_only_when_complete_and_control_tokens_never()
    {
        var tok = Stories.Value;
        var trie = TokenTrie.For(tok);
        var c = new GrammarConstraint(G.Parse("root ::= \"ab\" | \"abc\""), trie);
        var m = c.CreateMatcher();
        int eos = tok.Eos!.Value;
        m.IsAllowed(eos).Should().BeFalse();
        m.TryAcceptBytes("ab"u8).Should().BeTrue();
        m.IsAllowed(eos).Should().BeTrue();
        m.IsAllowed(tok.Bos!.Value).Should().BeFalse("control tokens have no bytes");
        m.Accept(eos);
        m.IsEnded.Should().BeTrue();
        Assert.Throws<GrammarException>(() => m.Apply(new float[tok.VocabSize]));
    }

    [Fact]
    public void Apply_throws_when_no_token_is_allowed()
    {
        // Only a character no token of a 3-token vocabulary can produce.
        var trie = new TokenTrie(3, id => id == 0 ? "a"u8.ToArray() : id == 1 ? "b"u8.ToArray() : null, id => id == 2);
        var m = new GrammarConstraint(G.Parse("root ::= \"c\""), trie).CreateMatcher();
        Assert.Throws<GrammarException>(() => m.Apply(new float[3])).Message.Should().Contain("allows no token");
    }
}
