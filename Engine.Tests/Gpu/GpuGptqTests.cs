using Engine.Gpu;
using Engine.Models;
using Engine.Tests.Gptq;
using Engine.Tests.Support;
using Xunit.Abstractions;

namespace Engine.Tests.Gpu;

/// <summary>GPTQ / AWQ folders on the GPU backend (the ILGPU CPU accelerator unless ENGINE_GPU_TEST_DEVICE names a
/// card). A symmetric GPTQ checkpoint without act-order is exactly Q4_0 after the load-time repack, so it runs the
/// device's Q4_0 kernels, which take float activations: it is held to the float-activation bar of the fixture
/// (max |diff| 1e-3 over the first 8 positions, the simulator being slow, and the same top tokens). Zero points and
/// act-order have no device kernel yet and are refused with a message saying so.</summary>
[Collection(GpuCollection.Name)]
public class GpuGptqTests(GpuTestDevice device, ITestOutputHelper output)
{
    LoadedModel Open(string name) => LoadedModel.Open(Path.Combine(GptqFixtureTests.FixtureRoot, name),
        new ModelOptions { BackendFactory = (_, _) => new GpuBackend(device.ModelDevice, ownsDevice: false) });

    [SharedFact]
    public void Symmetric_gptq_runs_as_q4_0_on_the_device()
    {
        const string name = "fx-llama-gptq-4bit-g128";
        using var model = Open(name);
        var golden = GoldenCase.LoadFixture(GptqFixtureTests.FixtureRoot, name);
        const int rows = 8;
        using var cache = model.Model.CreateCache(rows);
        var logits = new float[rows * golden.Vocab];
        model.Model.Forward(golden.Tokens[..rows], 0, cache, logits);
        for (int i = 0; i < rows; i++)
        {
            var row = logits.AsSpan(i * golden.Vocab, golden.Vocab);
            double diff = LogitCompare.MaxAbsDiff(row, golden.Row(i));
            output.WriteLine($"position {i}: max |diff| {diff:E2}");
            diff.Should().BeLessThanOrEqualTo(1e-3, $"position {i}");
            LogitCompare.Argmax(row).Should().Be(LogitCompare.Argmax(golden.Row(i)));
        }
    }

    [SharedTheory]
    [InlineData("fx-llama-gptq-4bit-g32-actorder")]
    [InlineData("fx-llama-awq-4bit-g128")]
    public void Zero_points_and_act_order_are_refused_on_the_device(string name) =>
        FluentActions.Invoking(() => Open(name)).Should().Throw<NotSupportedException>().WithMessage("*GPU backend cannot compute yet*--device cpu*");
}
