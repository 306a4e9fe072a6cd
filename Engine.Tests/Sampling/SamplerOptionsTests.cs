using Engine.Sampling;

namespace Engine.Tests.Sampling;

public class SamplerOptionsTests
{
    /// <summary>A field and an out-of-range value for it (SamplerOptions is internal, so the theory takes the field's
    /// name and the value, and <see cref="With"/> builds the options).</summary>
    public static TheoryData<string, float> Invalid => new()
    {
        { "Temperature", -0.1f },
        { "Temperature", float.NaN },
        { "Temperature", float.PositiveInfinity },
        { "TopK", -1 },
        { "TopP", 0f },
        { "TopP", 1.01f },
        { "TopP", float.NaN },
        { "MinP", -0.01f },
        { "MinP", 1.5f },
        { "MinP", float.NaN },
        { "RepetitionPenalty", 0f },
        { "RepetitionPenalty", float.NaN },
        { "RepetitionPenalty", float.PositiveInfinity },
        { "PresencePenalty", float.NegativeInfinity },
        { "FrequencyPenalty", float.NaN },
        { "PenaltyLastN", -1 },
    };

    static SamplerOptions With(string field, float value) => field switch
    {
        "Temperature" => new() { Temperature = value },
        "TopK" => new() { TopK = (int)value },
        "TopP" => new() { TopP = value },
        "MinP" => new() { MinP = value },
        "RepetitionPenalty" => new() { RepetitionPenalty = value },
        "PresencePenalty" => new() { PresencePenalty = value },
        "FrequencyPenalty" => new() { FrequencyPenalty = value },
        "PenaltyLastN" => new() { PenaltyLastN = (int)value },
        _ => throw new ArgumentException($"no sampler option named '{field}'", nameof(field)),
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Out_of_range_values_are_rejected_naming_the_field(string field, float value)
    {
        var options = With(field, value);
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
