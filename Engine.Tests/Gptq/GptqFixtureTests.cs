using Xunit.Abstractions;
using Engine.Models;
using Engine.Tests.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Gptq;

/// <summary>The GPTQ and AWQ folders of ../shared/fixtures/quantized-hf run as they are, against their golden logits
/// (a float64 forward pass over the weights dequantized from the same files; tolerances from the fixture README).
/// Float-activation mode is held to the float bar (max |diff| 1e-3, every top token and greedy token equal); the default
/// 8-bit-activation mode (Q8_0 blocks, as the GGUF kernels) to the 8-bit one (NMSE ≤ 2e-3, top token at ≥ 22 of 24
/// positions, the first 4 greedy tokens).</summary>
public class GptqFixtureTests(ITestOutputHelper output)
{
    public static TheoryData<string> Folders => new()
    {
        "fx-llama-gptq-4bit-g128",
        "fx-llama-gptq-4bit-g32-actorder",
        "fx-llama-awq-4bit-g128",
    };

    internal static string FixtureRoot =>
        TestPaths.Shared("fixtures", "quantized-hf") ?? throw new Xunit.Sdk.XunitException($"fixtures/quantized-hf is missing from {TestPaths.SharedDir}");

    internal static LoadedModel Open(string name, bool floatActivations, bool repack = true, bool roundHead = true) =>
        LoadedModel.Open(Path.Combine(FixtureRoot, name), new ModelOptions
        {
            QuantizedCheckpointFloatActivations = floatActivations, Threads = 2, RepackWeights = repack, RoundCheckpointOutputHead = roundHead,
        });

    internal static float[] PromptLogits(Llama model, GoldenCase golden)
    {
        using var cache = model.CreateCache(golden.Rows);
        var logits = new float[golden.Rows * golden.Vocab];
        model.Forward(golden.Tokens, 0, cache, logits);
        return logits;
    }

    [SharedTheory]
    [MemberData(nameof(Folders))]
    public void Float_activations_match_the_golden_within_1e_3(string name)
    {
        using var model = Open(name, floatActivations: true);
        var golden = GoldenCase.LoadFixture(FixtureRoot, name);
        var logits = PromptLogits(model.Model, golden);
        for (int i = 0; i < golden.Rows; i++)
        {
            var row = logits.AsSpan(i * golden.Vocab, golden.Vocab);
            LogitCompare.MaxAbsDiff(row, golden.Row(i)).Should().BeLessThanOrEqualTo(1e-3, $"position {i}");
            LogitCompare.Argmax(row).Should().Be(LogitCompare.Argmax(golden.Row(i)), $"top token at position {i}");
        }
        StoriesGoldenTests.GreedyDecode(model.Model, golden.Tokens, golden.GreedyTokens.Length).Should().Equal(golden.GreedyTokens);
    }

    [SharedTheory]
    [MemberData(nameof(Folders))]
    public void Eight_bit_activations_match_the_golden_within_the_8_bit_tolerance(string name)
    {
        foreach (bool repack in new[] { true, false })
        {
            using var model = Open(name, floatActivations: false, repack);
            var golden = GoldenCase.LoadFixture(FixtureRoot, name);
            var logits = PromptLogits(model.Model, golden);
            LogitCompare.Nmse(logits, golden.Logits).Should().BeLessThanOrEqualTo(2e-3, $"repack {repack}");
            int same = Enumerable.Range(0, golden.Rows)
                .Count(i => LogitCompare.Argmax(logits.AsSpan(i * golden.Vocab, golden.Vocab)) == LogitCompare.Argmax(golden.Row(i)));
            same.Should().BeGreaterThanOrEqualTo(22, $"repack {repack}");
            var greedy = StoriesGoldenTests.GreedyDecode(model.Model, golden.Tokens, golden.GreedyTokens.Length);
            int agreeing = greedy.Zip(golden.GreedyTokens).TakeWhile(p => p.First == p.Second).Count();
            output.WriteLine($"{name}, repack {repack}: max |diff| {LogitCompare.MaxAbsDiff(logits, golden.Logits):E2}, NMSE " +
                $"{LogitCompare.Nmse(logits, golden.Logits):E2}, top-1 {same}/{golden.Rows}, first {agreeing} of {golden.GreedyTokens.Length} greedy tokens");
            greedy.Take(4).Should().Equal(golden.GreedyTokens.Take(4));
        }
    }
}

/// <summary>The public option reaches the loader: through <see cref="Model.Load"/> the AWQ fixture meets the float bar
/// only with <see cref="ModelLoadOptions.QuantizedCheckpointFloatActivations"/> set.</summary>
public class GptqLoadOptionTests
{
    [SharedFact]
    public void The_float_activation_option_selects_the_exact_mode()
    {
        const string name = "fx-llama-awq-4bit-g128";
        var golden = GoldenCase.LoadFixture(GptqFixtureTests.FixtureRoot, name);
        double MaxDiff(bool floatActivations)
        {
            using var model = Model.Load(Path.Combine(GptqFixtureTests.FixtureRoot, name),
                new ModelLoadOptions { QuantizedCheckpointFloatActivations = floatActivations, Threads = 2 });
            return LogitCompare.MaxAbsDiff(GptqFixtureTests.PromptLogits(model.Network, golden), golden.Logits);
        }
        MaxDiff(true).Should().BeLessThanOrEqualTo(1e-3);
        MaxDiff(false).Should().BeGreaterThan(1e-2, "8-bit activations move logits by ~0.2 on this fixture");
    }
}
