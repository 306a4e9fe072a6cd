using Engine.Backends;
using Engine.Backends.Cpu;
using Engine.Gpu.Kernels;
using Engine.Models;

namespace Engine.Gpu;

/// <summary>What --device asks for.</summary>
internal enum DeviceChoice { Cpu, Cuda, OpenCL, Auto, IlgpuCpu }

/// <summary>Turns a --device choice into the backend factory a model is opened with.</summary>
internal static class DeviceSelection
{
    public const string Names = "cpu, cuda, opencl, auto or ilgpu-cpu";

    public static bool TryParse(string text, out DeviceChoice choice)
    {
        DeviceChoice? parsed = text.ToLowerInvariant() switch
        {
            "cpu" => DeviceChoice.Cpu,
            "cuda" => DeviceChoice.Cuda,
            "opencl" => DeviceChoice.OpenCL,
            "auto" => DeviceChoice.Auto,
            "ilgpu-cpu" => DeviceChoice.IlgpuCpu,
            _ => null,
        };
        choice = parsed ?? DeviceChoice.Cpu;
        return parsed is not null;
    }

    /// <summary>The stage factory for `choice` (--device) and `gpuLayers` (--gpu-layers; null: all layers), or null
    /// for the CPU backend. An explicit device is opened here, so a missing one fails
    /// (<see cref="DeviceUnavailableException"/>) before the model file is read. `auto` uses a GPU when one is present
    /// and can run the model, with as many layers as fit when not all do, and otherwise says on `log` why it runs on
    /// the CPU.</summary>
    public static Func<ModelConfig, LlamaWeights, IReadOnlyList<LayerStage>>? StageFactory(DeviceChoice choice, int threads, int? gpuLayers, TextWriter log, bool repack = true)
    {
        switch (choice)
        {
            case DeviceChoice.Cpu:
                if (gpuLayers > 0) log.WriteLine("engine: --gpu-layers has no effect with --device cpu");
                return null;
            case DeviceChoice.Auto:
                var gpu = GpuDevice.TryOpenAnyGpu();
                if (gpu is null)
                {
                    log.WriteLine("engine: --device auto: no CUDA or OpenCL device found, running on the CPU");
                    return null;
                }
                return (config, weights) => AutoStages(gpu, config, weights, threads, gpuLayers, log, repack);
            default:
                var device = GpuDevice.Open(choice switch
                {
                    DeviceChoice.Cuda => DeviceKind.Cuda,
                    DeviceChoice.OpenCL => DeviceKind.OpenCL,
                    _ => DeviceKind.IlgpuCpu,
                });
                return (config, weights) => LayerOffload.Place(device, config, weights, gpuLayers ?? config.LayerCount, threads, log, repack);
        }
    }

    /// <summary>The device of an explicit --device for a diagnostic that opens several models on it (engine golden
    /// --fixtures), or null for the CPU backend. The caller owns it: backends made on it must not own it.</summary>
    /// <exception cref="ArgumentException">`auto`: a diagnostic must name the device it checks.</exception>
    public static GpuDevice? OpenForDiagnostics(DeviceChoice choice) => choice switch
    {
        DeviceChoice.Cpu => null,
        DeviceChoice.Cuda => GpuDevice.Open(DeviceKind.Cuda),
        DeviceChoice.OpenCL => GpuDevice.Open(DeviceKind.OpenCL),
        DeviceChoice.IlgpuCpu => GpuDevice.Open(DeviceKind.IlgpuCpu),
        _ => throw new ArgumentException("--device auto may pick the CPU without saying so per model: name the device to check (cpu, cuda, opencl or ilgpu-cpu)"),
    };

    static IReadOnlyList<LayerStage> AutoStages(GpuDevice device, ModelConfig config, LlamaWeights weights, int threads, int? gpuLayers, TextWriter log, bool repack)
    {
        string? reason = WhyNotOnDevice(device, config, weights);
        int layers = gpuLayers ?? LayerOffload.LayersThatFit(device.Accelerator.MemorySize, config, weights);
        if (reason is null && layers == 0) reason = $"not even one layer of the model fits in the {device.Accelerator.MemorySize >> 20} MiB of {device.Description}";
        if (reason is not null)
        {
            log.WriteLine($"engine: --device auto: {reason}; running on the CPU");
            device.Dispose();
            return [new LayerStage(new CpuBackend(threads, repack), 0, config.LayerCount)];
        }
        if (gpuLayers is null && layers < config.LayerCount)
            log.WriteLine($"engine: --device auto: the whole model does not fit in {device.Description}; {layers} of {config.LayerCount} layers go on it");
        return LayerOffload.Place(device, config, weights, layers, threads, log, repack);
    }

    /// <summary>Why this model cannot run on the device at all (an unsupported weight type, a head too wide), or
    /// null when it can.</summary>
    static string? WhyNotOnDevice(GpuDevice device, ModelConfig config, LlamaWeights weights)
    {
        if (Math.Max(config.HeadDim, config.ValueHeadDim) > AttentionKernels.MaxHeadDim)
            return $"{device.Description} has no attention kernel for heads wider than {AttentionKernels.MaxHeadDim}";
        var registry = new WeightKernelRegistry(device.Accelerator);
        foreach (var m in weights.Matrices())
            if (!registry.Supports(m.Type)) return $"the GPU backend has no kernels for {m.Type} ({m.Name})";
        return null;
    }
}
