using Engine.Sampling;

namespace Engine.Tests.Sampling;

public class PenaltiesTests
{
    [Fact]
    public void Repetition_divides_positive_and_multiplies_negative_logits_once_per_token()
    {
        float[] logits = [2f, -2f, 1f, 0.5f];
        var counts = new int[4];
        Penalties.Apply(logits, [0, 1, 0, 3], new SamplerOptions { RepetitionPenalty = 2f }, counts);
        logits.Should().Equal(1f, -4f, 1f, 0.25f); // token 0 appears twice but is penalized once
        counts.Should().OnlyContain(c => c == 0);   // scratch left clean for the next call
    }

    [Fact]
    public void Presence_once_and_frequency_per_occurrence()
    {
        float[] logits = [2f, -2f, 1f, 0.5f];
        Penalties.Apply(logits, [0, 1, 0, 3, 0], new SamplerOptions { PresencePenalty = 0.5f, FrequencyPenalty = 0.25f }, new int[4]);
        logits.Should().Equal(2f - 0.5f - 3 * 0.25f, -2f - 0.5f - 0.25f, 1f, 0.5f - 0.5f - 0.25f);
    }

    [Fact]
    public void Only_the_last_n_tokens_count()
    {
        float[] logits = [2f, 2f, 2f];
        Penalties.Apply(logits, [0, 1, 2], new SamplerOptions { RepetitionPenalty = 2f, PenaltyLastN = 2 }, new int[3]);
        logits.Should().Equal(2f, 1f, 1f);

        float[] untouched = [2f, 2f];
        Penalties.Apply(untouched, [0, 1], new SamplerOptions { RepetitionPenalty = 2f, PenaltyLastN = 0 }, new int[2]);
        untouched.Should().Equal(2f, 2f);
    }

    [Fact]
    public void Out_of_vocabulary_recent_token_throws_and_leaves_scratch_clean()
    {
        float[] logits = [1f, 1f];
        var counts = new int[2];
        var act = () => Penalties.Apply(logits, [0, 5], new SamplerOptions { RepetitionPenalty = 2f }, counts);
        act.Should().Throw<ArgumentOutOfRangeException>();
        counts.Should().OnlyContain(c => c == 0);
        logits.Should().Equal(1f, 1f);
    }
}
