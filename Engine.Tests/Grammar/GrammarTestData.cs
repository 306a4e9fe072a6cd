using System.Text;
using Engine.Grammar;
using Engine.Tests.Support;

namespace Engine.Tests.Grammar;

/// <summary>llama.cpp's example grammars and schema vectors (Engine.Tests/TestData/llama-grammar, see PROVENANCE.md),
/// and helpers that run a string through both matchers.</summary>
internal static class GrammarTestData
{
    public static string Dir => TestPaths.Repo("Engine.Tests", "TestData", "llama-grammar");
    public static string Gbnf(string name) => File.ReadAllText(Path.Combine(Dir, name + ".gbnf"));

    /// <summary>A vocabulary of the 256 single bytes: feeding a string byte by byte through the automaton.</summary>
    public static TokenTrie ByteTrie { get; } = new(256, id => [(byte)id], _ => false);

    /// <summary>Whether <paramref name="text"/> is a complete sentence, by the reference matcher and by the automaton;
    /// the test fails when they disagree.</summary>
    public static bool Matches(Engine.Grammar.Grammar g, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var reference = new ReferenceMatcher(g);
        bool refOk = reference.AcceptBytes(bytes) && reference.IsComplete;
        var automaton = new GrammarAutomaton(g, ByteTrie);
        int state = automaton.Advance(automaton.Start, bytes);
        bool fastOk = state >= 0 && automaton.CanEnd(state);
        fastOk.Should().Be(refOk, $"the automaton and the reference matcher must agree on \"{text}\"");
        return refOk;
    }
}
