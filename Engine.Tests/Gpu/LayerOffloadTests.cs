using Engine.Backends;
using Engine.Gpu;
using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Gpu;

/// <summary>How many layers of a model fit in a device's memory (--device auto on a model larger than the card,
/// and the advice of a --gpu-layers that does not fit), on stories260K's five layers.</summary>
public class LayerOffloadTests
{
    static long Bytes(WeightSet part) => part.Matrices.Sum(m => m.View.ByteSize) + part.Vectors.Sum(v => (long)v.Length * sizeof(float));

    [Fact]
    public void Layers_that_fit_counts_whole_layers_with_their_kv_cache_within_the_weight_share()
    {
        using var model = LoadedModel.Open(TestPaths.Repo("models", "stories260K.gguf"));
        var c = model.Config;
        var w = model.Model.Weights;
        long kvPerLayer = (long)LayerOffload.AssumedContext * (c.KeyWidth + c.ValueWidth) * sizeof(float);
        long embedding = Bytes(w.Part(0, 0, embedding: true, output: false));
        long layer = Bytes(w.Part(0, 1, embedding: false, output: false)) + kvPerLayer; // stories' layers are alike
        long MemoryFor(long bytes) => (long)Math.Ceiling(bytes / LayerOffload.WeightShare) + 1;

        LayerOffload.LayersThatFit(1L << 40, c, w).Should().Be(c.LayerCount);
        LayerOffload.LayersThatFit(1024, c, w).Should().Be(0);
        LayerOffload.LayersThatFit(MemoryFor(embedding + 2 * layer), c, w).Should().Be(2);
        LayerOffload.LayersThatFit(MemoryFor(embedding + 2 * layer) - 4096, c, w).Should().Be(1);
        // All five layers but not the output head: the model cannot run wholly on the device, so one layer stays off.
        long head = Bytes(w.Part(0, 0, embedding: false, output: true));
        LayerOffload.LayersThatFit(MemoryFor(embedding + 5 * layer), c, w).Should().Be(head > 0 ? 4 : 5);
    }

    [Fact]
    public void The_memory_error_names_what_to_do()
    {
        var e = new DeviceMemoryException("the weights of 32 layers", 20L << 30, 0, 8L << 30, "use --gpu-layers 12 or fewer (the rest run on the CPU)");
        e.Message.Should().Be("the weights of 32 layers needs 20480 MiB of device memory, more than the device's 8192 MiB; use --gpu-layers 12 or fewer (the rest run on the CPU)");
    }
}
