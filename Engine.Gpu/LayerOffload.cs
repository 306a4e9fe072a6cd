using Engine.Backends;
using Engine.Backends.Cpu;
using Engine.Models;

namespace Engine.Gpu;

/// <summary>--gpu-layers: the first N layers (and the token embedding) on the device, the rest and the output
/// head on the CPU, as a list of stages for <see cref="Llama"/>. Also estimates how many layers fit, for
/// `--device auto` on a model larger than the card and for the error message of an N that does not.</summary>
internal static class LayerOffload
{
    /// <summary>Share of device memory the weights may take when the layer count is chosen automatically: the
    /// rest is left for activations, the KV cache and the driver.</summary>
    public const double WeightShare = 0.85;

    /// <summary>Context length assumed for the KV cache when choosing how many layers fit (the cache is created
    /// after loading, with whatever --ctx says).</summary>
    public const int AssumedContext = 4096;

    /// <summary>The stages for `deviceLayers` layers on `device` (all when it is at least the layer count, none when
    /// 0). Says on `log` how the model was split. Checks first that the device part can fit, so a too-large N fails
    /// before anything is uploaded, with the N that would fit.</summary>
    public static IReadOnlyList<LayerStage> Place(GpuDevice device, ModelConfig config, LlamaWeights weights, int deviceLayers, int threads, TextWriter log, bool repack = true)
    {
        int layers = config.LayerCount;
        int n = Math.Clamp(deviceLayers, 0, layers);
        if (n == 0)
        {
            log.WriteLine($"engine: --gpu-layers 0: running on the CPU");
            device.Dispose();
            return [new LayerStage(new CpuBackend(threads, repack), 0, layers)];
        }
        long bytes = Bytes(weights.Part(0, n, embedding: true, output: n == layers));
        if (bytes > device.Accelerator.MemorySize)
        {
            int fit = LayersThatFit(device.Accelerator.MemorySize, config, weights);
            device.Dispose();
            throw new DeviceMemoryException($"the weights of {n} layers", bytes, 0, device.Accelerator.MemorySize,
                fit > 0 ? $"use --gpu-layers {fit} or fewer (the rest run on the CPU)" : "no layer fits: use --device cpu");
        }
        if (n == layers)
        {
            log.WriteLine($"engine: running on {device.Description}");
            return [new LayerStage(new GpuBackend(device), 0, layers)];
        }
        log.WriteLine($"engine: layers 0-{n - 1} on {device.Description}; layers {n}-{layers - 1} and the output on the CPU");
        var gpu = new GpuBackend(device);
        try { return [new LayerStage(gpu, 0, n), new LayerStage(new CpuBackend(threads, repack), n, layers - n)]; }
        catch { gpu.Dispose(); throw; }
    }

    /// <summary>How many of the first layers fit in `memory` bytes of device memory (the layer count when the
    /// whole model, output head included, fits): their weights within <see cref="WeightShare"/> of it, with the
    /// KV cache of <see cref="AssumedContext"/> tokens. An estimate from the file's sizes; the upload checks again.</summary>
    public static int LayersThatFit(long memory, ModelConfig config, LlamaWeights weights)
    {
        long budget = (long)(memory * WeightShare);
        long kvPerLayer = (long)AssumedContext * (config.KeyWidth + config.ValueWidth) * sizeof(float);
        long used = Bytes(weights.Part(0, 0, embedding: true, output: false));
        int n = 0;
        while (n < config.LayerCount)
        {
            long next = Bytes(weights.Part(n, 1, embedding: false, output: false)) + kvPerLayer;
            if (used + next > budget) return n;
            used += next;
            n++;
        }
        // Every layer fits; the output head has to as well for the model to run wholly on the device. (A tied head
        // is the embedding, already counted, but its norm still is not.)
        long all = Bytes(weights.Part(0, config.LayerCount, embedding: true, output: true));
        long layersOnly = Bytes(weights.Part(0, config.LayerCount, embedding: true, output: false));
        return used + (all - layersOnly) <= budget ? n : n - 1;
    }

    /// <summary>Bytes in the file of a set of weights (norm vectors as the float32 the device holds).</summary>
    static long Bytes(WeightSet part) =>
        part.AllMatrices.Sum(m => m.View.ByteSize) + part.Vectors.Sum(v => (long)v.Length * sizeof(float));
}
