using System.Diagnostics;
using Engine.Backends.Cpu;
using Engine.Gpu;
using Engine.Models;
using Engine.Tests.Support;
using Xunit.Abstractions;

namespace Engine.Tests.Gpu;

/// <summary>Device memory comes back: a disposed KV cache returns its buffers to the device at once (a session
/// replaced many times does not grow the device's use), and a disposed model returns everything else, each
/// counted exactly by <see cref="GpuBackend.DeviceBytesInUse"/>. Every cache runs a forward pass, so it is a real
/// one, written and read by the kernels.</summary>
[Collection(GpuCollection.Name)]
public class GpuMemoryReleaseTests(GpuTestDevice device, ITestOutputHelper output)
{
    const int Caches = 100;
    static string Stories => TestPaths.Repo("models", "stories260K.gguf");

    [Fact]
    public void Each_disposed_cache_returns_its_device_memory_and_the_model_returns_the_rest()
    {
        var clock = Stopwatch.StartNew();
        GpuBackend? backend = null;
        var model = LoadedModel.Open(Stories, new ModelOptions { BackendFactory = (_, _) => backend = new GpuBackend(device.ModelDevice, ownsDevice: false) });
        bool modelDisposed = false;
        try
        {
            int[] tokens = [1, 2];
            var expected = new float[model.Config.VocabSize];
            // The first step also allocates what the backend makes on first use (the token-id staging, the RoPE
            // rates); after it, only caches come and go.
            using (var first = model.Model.CreateCache(4)) model.Model.Forward(tokens, 0, first, expected);
            long baseline = backend!.DeviceBytesInUse;
            long reserved = backend.Memory.Used;
            baseline.Should().BeGreaterThan(model.Model.Weights.Matrices().Sum(m => m.View.ByteSize), "the F32 weights are resident");

            var logits = new float[model.Config.VocabSize];
            for (int i = 0; i < Caches; i++)
            {
                var cache = model.Model.CreateCache(tokens.Length + i % 3);
                backend.DeviceBytesInUse.Should().Be(baseline + cache.Bytes, $"cache {i} holds its layers' keys and values");
                model.Model.Forward(tokens, 0, cache, logits);
                logits.Should().Equal(expected, $"cache {i}, on memory other caches held, gives the first cache's logits");
                cache.Dispose();
                backend.DeviceBytesInUse.Should().Be(baseline, $"disposing cache {i} returns every byte it held");
                backend.Memory.Used.Should().Be(reserved, $"and its reservation");
            }
            backend.LivePools.Should().Be(0);

            var left = model.Model.CreateCache(4); // not disposed: the model's disposal frees it
            model.Dispose();
            modelDisposed = true;
            backend.DeviceBytesInUse.Should().Be(0, "a disposed model holds no device memory: weights, activations and caches are all freed");
            backend.LivePools.Should().Be(0);
            left.IsDisposed.Should().BeTrue("the backend disposed the cache it still held");
            left.Dispose(); // already freed: nothing is freed twice
            backend.DeviceBytesInUse.Should().Be(0);
            FluentActions.Invoking(() => model.Model.Forward(tokens, 0, left, logits)).Should().Throw<ObjectDisposedException>();
            output.WriteLine($"{Caches} caches on {device.ModelDevice.Description}: baseline {baseline} bytes, {clock.Elapsed.TotalSeconds:F1} s");
        }
        finally
        {
            if (!modelDisposed) model.Dispose();
        }
    }

    /// <summary>The device's part of a split model's cache goes back with the staged cache, the CPU's part with it;
    /// a disposed device cache refuses the backend's operations.</summary>
    [Fact]
    public void A_split_models_cache_returns_its_device_part()
    {
        GpuBackend? gpu = null;
        var options = new ModelOptions
        {
            StageFactory = (config, _) => [new LayerStage(gpu = new GpuBackend(device.ModelDevice, ownsDevice: false), 0, 2),
                                           new LayerStage(new CpuBackend(2), 2, config.LayerCount - 2)],
        };
        var model = LoadedModel.Open(Stories, options);
        bool modelDisposed = false;
        try
        {
            var logits = new float[model.Config.VocabSize];
            using (var first = model.Model.CreateCache(4)) model.Model.Forward([1, 2], 0, first, logits);
            long baseline = gpu!.DeviceBytesInUse;
            for (int i = 0; i < 5; i++)
            {
                var cache = model.Model.CreateCache(4);
                gpu.DeviceBytesInUse.Should().Be(baseline + cache.Store.Pools[0].Bytes, "the device holds its two layers' part");
                model.Model.Forward([1, 2], 0, cache, logits);
                cache.Dispose();
                cache.Store.Pools.Should().OnlyContain(p => p.IsDisposed);
                gpu.DeviceBytesInUse.Should().Be(baseline, $"disposing staged cache {i} returns its device part");
            }

            var disposed = model.Model.CreateCache(4);
            disposed.Dispose();
            var k = gpu.Allocate("k", model.Config.KeyWidth);
            var batch = new ForwardBatch(disposed.Store.BlockTokens);
            batch.Add([1], 0, disposed.BlockTable, LogitsWanted.None);
            FluentActions.Invoking(() => gpu.StoreKv(disposed.Store.Pools[0], 0, batch, k, k))
                .Should().Throw<ObjectDisposedException>().Which.ObjectName.Should().StartWith("KV pool (1 blocks x 32 tokens x 2 layers");

            model.Dispose();
            modelDisposed = true;
            gpu.DeviceBytesInUse.Should().Be(0);
        }
        finally
        {
            if (!modelDisposed) model.Dispose();
        }
    }
}
