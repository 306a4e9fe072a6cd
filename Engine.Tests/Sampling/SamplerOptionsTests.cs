using Engine.Sampling;

namespace Engine.Tests.Sampling;

public class SamplerOptionsTests
{
    public static TheoryData<SamplerOptions, string> Invalid => new()
    {
        { new SamplerOptions { Temperature = -0.1f }, "Temperature" },
        { new SamplerOptions { Temperature = float.NaN }, "Temperature" },
        { new SamplerOptions { Temperature = float.PositiveInfinity }, "Temperature" },
        { new SamplerOptions { TopK = -1 }, "TopK" },
        { new SamplerOptions { TopP = 0f }, "TopP" },
        { new SamplerOptions { TopP = 1.01f }, "TopP" },
        { new SamplerOptions { TopP = float.NaN }, "TopP" },
        { new SamplerOptions { MinP = -0.01f }, "MinP" },
        { new SamplerOptions { MinP = 1.5f }, "MinP" },
        { new SamplerOptions { MinP = float.NaN }, "MinP" },
        { new SamplerOptions { RepetitionPenalty = 0f }, "RepetitionPenalty" },
        { new SamplerOptions { RepetitionPenalty = float.NaN }, "RepetitionPenalty" },
        { new SamplerOptions { RepetitionPenalty = float.PositiveInfinity }, "RepetitionPenalty" },
        { new SamplerOptions { PresencePenalty = float.NegativeInfinity }, "PresencePenalty" },
        { new SamplerOptions { FrequencyPenalty = float.NaN }, "FrequencyPenalty" },
        { new SamplerOptions { PenaltyLastN = -1 }, "PenaltyLastN" },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Out_of_range_values_are_rejected_naming_the_field(SamplerOptions options, string field)
    {
        var act = () => options.Validate(100);
        act.Should().Throw<InvalidSamplingOptionsException>().Which.ParamName.Should().Be(field);
        FluentActions.Invoking(() => new Sampler(options, 100)).Should().Throw<ArgumentException>();
    }

    [Fact]
    public void Top_k_above_vocabulary_is_clamped()
    {
        new SamplerOptions { TopK = 1_000_000 }.Validate(100).TopK.Should().Be(100);
        new Sampler(new SamplerOptions { TopK = 1_000_000 }, 100).Options.TopK.Should().Be(100);
    }

    [Fact]
    public void Defaults_and_presets_are_valid()
    {
        new SamplerOptions().Validate(10).Should().Be(new SamplerOptions());
        SamplerOptions.Greedy.Validate(10).Temperature.Should().Be(0f);
        SamplerOptions.LlamaCppDefaults.Validate(10).TopK.Should().Be(10);
        FluentActions.Invoking(() => new SamplerOptions().Validate(0)).Should().Throw<ArgumentOutOfRangeException>();
    }
}
