using Engine.Grammar;
using G = Engine.Grammar.Grammar;

namespace Engine.Tests.Grammar;

public class GbnfParserTests
{
    [Theory]
    [InlineData("json")]
    [InlineData("json_arr")]
    [InlineData("list")]
    [InlineData("arithmetic")]
    [InlineData("chess")]
    [InlineData("english")]
    [InlineData("c")]
    [InlineData("japanese")]
    public void Llama_cpp_example_grammars_parse(string name)
    {
        var g = G.Parse(GrammarTestData.Gbnf(name));
        g.RuleCount.Should().BeGreaterThan(0);
        g.RuleNames[g.Root].Should().Be("root");
    }

    [Theory]
    [InlineData("json", "{\"a\": [1, 2.5e3, \"x\\n\"], \"b\": {\"c\": null}}", true)]
    [InlineData("json", "{\"a\": tru}", false)]
    [InlineData("json", "{\"a\": 1,}", false)]
    [InlineData("json", "[1]", false)]
    [InlineData("json_arr", "[\n{\"a\": 1},\n{\"b\": [true, false]}\n]", true)]
    [InlineData("json_arr", "{\"a\": 1}", false)]
    [InlineData("list", "- one\n- two\n", true)]
    [InlineData("list", "* one\n", false)]
    [InlineData("arithmetic", "(1+2)*3-4/5= x\n", true)]
    [InlineData("arithmetic", "1++2= 3\n", false)]
    [InlineData("chess", "1. e4 e5\n2. Nf3 Nc6\n", true)]
    [InlineData("chess", "1. e9 e5\n2. a3 a6\n", false)]
    [InlineData("english", "Hello world, this is fine.", true)]
    [InlineData("c", "int main(int argc){return 0;}", true)]
    [InlineData("c", "int main( { }", false)]
    [InlineData("japanese", "こんにちは", true)]
    [InlineData("japanese", "hello", false)]
    public void Example_grammars_accept_valid_and_reject_invalid(string name, string text, bool valid)
    {
        var g = G.Parse(GrammarTestData.Gbnf(name));
        GrammarTestData.Matches(g, text).Should().Be(valid, $"{name} on \"{text}\"");
    }

    [Theory]
    [InlineData("root ::= \"a\"{3}", "aaa", true)]
    [InlineData("root ::= \"a\"{3}", "aa", false)]
    [InlineData("root ::= \"a\"{2,}", "aaaaa", true)]
    [InlineData("root ::= \"a\"{2,4}", "aaaaa", false)]
    [InlineData("root ::= \"a\"{0,2} \"b\"", "b", true)]
    [InlineData("root ::= [^a-c]+", "xyz", true)]
    [InlineData("root ::= [^a-c]+", "xbz", false)]
    [InlineData("root ::= . .", "é€", true)]
    [InlineData("root ::= \"\\x41\\u00e9\\U0001F600\\t\\\"\\\\\"", "Aé😀\t\"\\", true)]
    [InlineData("root ::= ( \"a\" | \"b\" )* # comment\n", "abba", true)]
    [InlineData("root ::= (\n  x\n  | y\n)\nx ::= \"x\"\ny ::= \"y\"", "y", true)]
    [InlineData("root ::= [\\]\\-]", "-", true)]
    [InlineData("root ::= \"a\"?", "", true)]
    [InlineData("root ::= [😀-😂]", "😁", true)]
    [InlineData("root ::= [😀-😂]", "😃", false)]
    public void Repetitions_classes_escapes_and_comments(string gbnf, string text, bool valid) =>
        GrammarTestData.Matches(G.Parse(gbnf), text).Should().Be(valid);

    [Theory]
    [InlineData("root ::= foo", "undefined rule 'foo'", 1, 10)]
    [InlineData("root ::= \"a\"\nx ::= bar", "undefined rule 'bar'", 2, 7)]
    [InlineData("foo ::= \"a\"", "does not define the start rule 'root'", 0, 0)]
    [InlineData("root ::= ( \"a\"", "unbalanced '('", 1, 10)]
    [InlineData("root ::= \"a\" )", "unbalanced ')'", 1, 14)]
    [InlineData("root ::= \"\\q\"", "bad escape '\\q'", 1, 11)]
    [InlineData("root ::= \"\\x4\"", "bad escape", 1, 14)]
    [InlineData("root ::= \"abc", "unterminated string literal", 1, 10)]
    [InlineData("root ::= [abc", "unterminated character class", 1, 10)]
    [InlineData("root = \"a\"", "expecting ::=", 1, 6)]
    [InlineData("root ::= *", "expecting an item before", 1, 10)]
    [InlineData("root ::= \"a\"{3001}", "exceeds sane defaults", 1, 13)]
    [InlineData("root ::= <[12]>", "token references", 1, 10)]
    public void Errors_name_what_and_where(string gbnf, string what, int line, int column)
    {
        var e = Assert.Throws<GrammarException>(() => G.Parse(gbnf));
        e.Message.Should().Contain(what);
        e.Line.Should().Be(line);
        e.Column.Should().Be(column);
    }

    [Theory]
    [InlineData("root ::= root \"a\" | \"a\"")]
    [InlineData("root ::= a\na ::= b \"x\"\nb ::= \"\" | a")]
    [InlineData("root ::= a\na ::= b? a \"x\" | \"y\"\nb ::= \"z\"")]
    public void Left_recursion_is_refused(string gbnf) =>
        Assert.Throws<GrammarException>(() => G.Parse(gbnf)).Message.Should().Contain("left recursion");

    [Fact]
    public void Hostile_sizes_are_refused()
    {
        // Nested groups.
        var deep = "root ::= " + new string('(', 1000) + "\"a\"" + new string(')', 1000);
        Assert.Throws<GrammarException>(() => G.Parse(deep)).Message.Should().Contain("nested deeper");
        // Repetition of a repetition multiplies.
        Assert.Throws<GrammarException>(() => G.Parse("root ::= (\"a\"{0,100}){0,100}")).Message.Should().Contain("sane defaults");
    }
}
