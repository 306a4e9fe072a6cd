using Engine.Gpu;
using Engine.Tests.Support;

namespace Engine.Tests.Api;

/// <summary>Sessions return their memory through the public API: on the GPU backend (ILGPU's CPU accelerator, so it runs
/// without a GPU) 100 sessions created and disposed leave the device's memory in use at its baseline, and disposing the
/// model returns all of it, sessions still open included.</summary>
public class SessionMemoryTests
{
    static readonly string ModelPath = TestPaths.Repo("models", "stories260K.gguf");

    [Fact]
    public async Task One_hundred_sessions_and_then_the_model_return_the_device_memory()
    {
        var model = Model.Load(ModelPath, new ModelLoadOptions { Device = GpuDevices.CpuAccelerator });
        var backend = (GpuBackend)model.Network.Backend;
        model.Info.Device.Should().NotBe("cpu");
        var greedy = GenerateOptions.Greedy with { MaxTokens = 2 };
        // The first step also allocates what the backend makes on first use (token staging, RoPE rates).
        using (var warm = model.CreateSession(16)) await foreach (var _ in warm.GenerateAsync("Once", greedy)) { }
        long baseline = backend.DeviceBytesInUse;
        baseline.Should().BeGreaterThan(0);

        List<int>? first = null;
        for (int i = 0; i < 100; i++)
        {
            var session = model.CreateSession(8 + i % 5);
            backend.DeviceBytesInUse.Should().BeGreaterThan(baseline, $"session {i} holds a KV cache on the device");
            model.BytesInMemory.Should().BeGreaterThan(model.Info.WeightBytes);
            if (i % 25 == 0)
            {
                var ids = new List<int>();
                await foreach (var token in session.GenerateAsync("Once", greedy)) ids.Add(token.Id);
                (first ??= ids).Should().Equal(ids, $"session {i} runs on memory earlier sessions held and generates the same");
            }
            session.Dispose();
            backend.DeviceBytesInUse.Should().Be(baseline, $"disposing session {i} returns every byte of its cache");
            model.BytesInMemory.Should().Be(model.Info.WeightBytes);
        }

        var open = model.CreateSession(8);
        model.Dispose();
        backend.DeviceBytesInUse.Should().Be(0, "the model returns its weights, activations and the caches of sessions still open");
        FluentActions.Invoking(() => open.GenerateAsync("Once")).Should().Throw<ObjectDisposedException>();
        open.Dispose();
        FluentActions.Invoking(() => model.CreateSession()).Should().Throw<ObjectDisposedException>();
    }
}
