using System.Text;
using Engine.Tests.Support;

namespace Engine.Tests.Chat;

/// <summary>Every case of ../shared/fixtures/chat-templates: the prompt Hugging Face transformers renders, byte for
/// byte, or a refusal where transformers raised an error.</summary>
public class JinjaFixtureTests
{
    [SharedTheory]
    [MemberData(nameof(JinjaCases.Ids), MemberType = typeof(JinjaCases))]
    public void Renders_like_transformers(string id)
    {
        var c = JinjaCases.Case(id);
        var (output, error) = JinjaCases.Render(c, JinjaCases.TemplateText(c));
        if (c.TryGetProperty("expected_error", out var expectedError))
        {
            output.Should().BeNull($"transformers refused this conversation ({expectedError.GetString()})");
            error.Should().NotBeNullOrEmpty();
            return;
        }
        error.Should().BeNull();
        var expected = c.GetProperty("expected").GetString()!;
        if (output != expected)
        {
            int at = 0;
            while (at < Math.Min(output!.Length, expected.Length) && output[at] == expected[at]) at++;
            Assert.Fail($"first difference at character {at}:\nexpected …{Excerpt(expected, at)}…\nactual   …{Excerpt(output, at)}…");
        }
        Encoding.UTF8.GetBytes(output!).Should().Equal(Encoding.UTF8.GetBytes(expected));
    }

    static string Excerpt(string s, int at) =>
        s.Substring(Math.Max(0, at - 40), Math.Min(s.Length, at + 40) - Math.Max(0, at - 40)).Replace("\n", "\\n");
}
