using Engine.Gpu;
using Engine.Tests.Support;

namespace Engine.Tests.Api;

/// <summary>Sessions return their memory through the public API: on the GPU backend (ILGPU's CPU accelerator, so it runs
/// without a GPU) the KV cache is one pool made when the model loads, so 100 sessions created, used and disposed leave the
/// device's memory where it was and give every block back; disposing the model returns all of it, sessions still open
/// included.</summary>
public class SessionMemoryTests
{
    static readonly string ModelPath = TestPaths.Repo("models", "stories260K.gguf");

    [Fact]
    public async Task One_hundred_sessions_and_then_the_model_return_the_device_memory()
    {
        var model = Model.Load(ModelPath, new ModelLoadOptions { Device = GpuDevices.CpuAccelerator, KvCacheBytes = 1 << 20 });
        var backend = (GpuBackend)model.Network.Backend;
        model.Info.Device.Should().NotBe("cpu");
        var greedy = GenerateOptions.Greedy with { MaxTokens = 2 };
        // The first step also allocates what the backend makes on first use (token staging, RoPE rates).
        using (var warm = model.CreateSession(16)) await foreach (var _ in warm.GenerateAsync("Once", greedy)) { }
        long baseline = backend.DeviceBytesInUse;
        baseline.Should().BeGreaterThan(model.KvCacheStatistics.Bytes, "the weights and the KV pool are on the device");
        model.KvCacheStatistics.Bytes.Should().BeGreaterThan(0);

        List<int>? first = null;
        for (int i = 0; i < 100; i++)
        {
            var session = model.CreateSession(8 + i % 5);
            if (i % 25 == 0)
            {
                var ids = new List<int>();
                await foreach (var token in session.GenerateAsync("Once", greedy)) ids.Add(token.Id);
                (first ??= ids).Should().Equal(ids, $"session {i} runs on blocks earlier sessions held and generates the same");
                model.KvCacheStatistics.BlocksInUse.Should().BeGreaterThan(0, $"session {i} holds blocks of the pool");
            }
            session.Dispose();
            model.KvCacheStatistics.BlocksInUse.Should().Be(0, $"disposing session {i} gives its blocks back");
            backend.DeviceBytesInUse.Should().Be(baseline, $"session {i} took its cache from the pool, not from the device");
        }

        var open = model.CreateSession(8);
        model.Dispose();
        backend.DeviceBytesInUse.Should().Be(0, "the model returns its weights, activations and the KV pool, sessions still open included");
        FluentActions.Invoking(() => open.GenerateAsync("Once")).Should().Throw<ObjectDisposedException>();
        open.Dispose();
        FluentActions.Invoking(() => model.CreateSession()).Should().Throw<ObjectDisposedException>();
    }
}
