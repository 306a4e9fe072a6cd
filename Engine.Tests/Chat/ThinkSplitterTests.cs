using Engine.Chat;

namespace Engine.Tests.Chat;

public class ThinkSplitterTests
{
    static (string Thinking, string Answer) Feed(ThinkSplitter splitter, params string[] pieces)
    {
        string thinking = "", answer = "";
        foreach (var p in pieces)
        {
            var c = splitter.Push(p);
            thinking += c.Thinking;
            answer += c.Answer;
        }
        var f = splitter.Flush();
        return (thinking + f.Thinking, answer + f.Answer);
    }

    [Fact]
    public void Qwen3_style_output_with_tags_split_over_pieces()
    {
        var result = Feed(new ThinkSplitter(), "<th", "ink>\nLet me ", "add.\n</th", "ink>\n\nThe answer", " is 4.");
        result.Should().Be(("Let me add.\n", "The answer is 4."));
    }

    [Fact]
    public void DeepSeekR1_prompt_already_opened_the_block()
    {
        var splitter = new ThinkSplitter(startsInThinking: true);
        splitter.InThinking.Should().BeTrue();
        Feed(splitter, "Hmm", ", 2+2", "=4.\n</think>", "\n\n4").Should().Be(("Hmm, 2+2=4.\n", "4"));
        splitter.InThinking.Should().BeFalse();
    }

    [Fact]
    public void Pieces_are_released_as_soon_as_they_cannot_be_a_tag()
    {
        var splitter = new ThinkSplitter(startsInThinking: true);
        splitter.Push("step one ").Should().Be(new ThinkChunk("step one ", ""));
        splitter.Push("then </").Should().Be(new ThinkChunk("then ", ""));
        splitter.Push("b> tag").Should().Be(new ThinkChunk("</b> tag", ""));
    }

    [Fact]
    public void Output_without_think_block_is_all_answer_and_later_tags_are_text()
    {
        Feed(new ThinkSplitter(), "Plain ", "answer about <think> tags").Should().Be(("", "Plain answer about <think> tags"));
    }

    [Fact]
    public void Unclosed_think_block_flushes_into_thinking()
    {
        Feed(new ThinkSplitter(), "<think>\nstill going </thi").Should().Be(("still going </thi", ""));
    }

    [Fact]
    public void Empty_think_block_from_enable_thinking_false()
    {
        Feed(new ThinkSplitter(), "<think>\n\n</think>\n\nDirect.").Should().Be(("", "Direct."));
    }
}
