using Engine.Sampling;

namespace Engine.Tests.Sampling;

public class StopStringsTests
{
    [Fact]
    public void Text_without_stop_prefixes_is_released_immediately()
    {
        var s = new StopStrings(["<|im_end|>"]);
        s.Push("Hello").Should().Be(new StopResult("Hello", false, null));
        s.Push(" world").Emit.Should().Be(" world");
    }

    [Fact]
    public void Stop_spanning_pieces_is_held_back_then_swallowed()
    {
        var s = new StopStrings(["<|im_end|>"]);
        s.Push("Hi <|").Should().Be(new StopResult("Hi ", false, null));
        s.Push("im_").Emit.Should().Be("");
        var r = s.Push("end|> trailing");
        r.Should().Be(new StopResult("", true, "<|im_end|>"));
        s.Stopped.Should().BeTrue();
        FluentActions.Invoking(() => s.Push("more")).Should().Throw<InvalidOperationException>();
    }

    [Fact]
    public void A_false_start_is_released_when_the_next_piece_breaks_it()
    {
        var s = new StopStrings(["STOP"]);
        s.Push("ab ST").Emit.Should().Be("ab ");
        s.Push("ar").Emit.Should().Be("STar");
        s.Push("S").Emit.Should().Be("");
        s.Flush().Should().Be("S");
    }

    [Fact]
    public void Text_before_the_stop_in_the_same_piece_is_emitted()
    {
        var s = new StopStrings(["\n\nUser:"]);
        s.Push("The answer is 4.\n").Emit.Should().Be("The answer is 4.");
        s.Push("\nUser: next").Should().Be(new StopResult("", true, "\n\nUser:")); // the held "\n" was part of it
    }

    [Fact]
    public void Earliest_of_several_stops_wins_and_overlapping_prefixes_are_held()
    {
        var s = new StopStrings(["xyz", "yz!", "END"]);
        s.Push("a xy").Emit.Should().Be("a ");      // "xy" could start "xyz"
        s.Push("z! END").Should().Be(new StopResult("", true, "xyz"));
    }

    [Fact]
    public void Surrogate_pairs_are_never_split()
    {
        var s = new StopStrings(["\uDE00!"]); // odd stop: a low surrogate first
        var r = s.Push("x😀");
        (r.Emit + s.Flush()).Should().Be("x😀");
        r.Emit.Length.Should().NotBe(2); // never "x" + high surrogate alone
    }

    [Fact]
    public void Validation_caps_count_and_length_and_ignores_empty_strings()
    {
        new StopStrings(["", null, "a", "a"]).Strings.Should().Equal("a");
        new StopStrings(null).Strings.Should().BeEmpty();
        new StopStrings(Enumerable.Range(0, StopStrings.MaxCount).Select(i => $"s{i}")).Strings.Should().HaveCount(16);

        FluentActions.Invoking(() => new StopStrings(Enumerable.Range(0, 17).Select(i => $"s{i}")))
            .Should().Throw<InvalidSamplingOptionsException>().Which.ParamName.Should().Be("stop");
        FluentActions.Invoking(() => new StopStrings([new string('x', 257)]))
            .Should().Throw<InvalidSamplingOptionsException>();
        new StopStrings([new string('x', 256)]).Strings.Should().HaveCount(1);
    }

    [Fact]
    public void No_stops_means_everything_passes()
    {
        var s = new StopStrings([]);
        s.Push("<|im_end|>").Should().Be(new StopResult("<|im_end|>", false, null));
        s.Flush().Should().Be("");
    }
}
