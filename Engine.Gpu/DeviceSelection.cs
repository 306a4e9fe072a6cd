using Engine.Backends;
using Engine.Backends.Cpu;
using Engine.Gpu.Kernels;
using Engine.Models;

namespace Engine.Gpu;

/// <summary>What --device asks for.</summary>
public enum DeviceChoice { Cpu, Cuda, OpenCL, Auto, IlgpuCpu }

/// <summary>Turns a --device choice into the backend factory a model is opened with.</summary>
public static class DeviceSelection
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

    /// <summary>The factory for `choice`, or null for the CPU backend. An explicit device is opened here, so a
    /// missing one fails (<see cref="DeviceUnavailableException"/>) before the model file is read. `auto` uses a
    /// GPU when one is present and can run the model, and otherwise says on `log` why it runs on the CPU.</summary>
    public static Func<ModelConfig, LlamaWeights, IBackend>? BackendFactory(DeviceChoice choice, int threads, TextWriter log)
    {
        switch (choice)
        {
            case DeviceChoice.Cpu:
                return null;
            case DeviceChoice.Auto:
                var gpu = GpuDevice.TryOpenAnyGpu();
                if (gpu is null)
                {
                    log.WriteLine("engine: --device auto: no CUDA or OpenCL device found, running on the CPU");
                    return null;
                }
                return (config, weights) => AutoBackend(gpu, config, weights, threads, log);
            default:
                var device = GpuDevice.Open(choice switch
                {
                    DeviceChoice.Cuda => DeviceKind.Cuda,
                    DeviceChoice.OpenCL => DeviceKind.OpenCL,
                    _ => DeviceKind.IlgpuCpu,
                });
                log.WriteLine($"engine: running on {device.Description}");
                return (_, _) => new GpuBackend(device);
        }
    }

    static IBackend AutoBackend(GpuDevice device, ModelConfig config, LlamaWeights weights, int threads, TextWriter log)
    {
        string? reason = WhyNotOnDevice(device, config, weights);
        if (reason is null)
        {
            log.WriteLine($"engine: --device auto: running on {device.Description}");
            return new GpuBackend(device);
        }
        log.WriteLine($"engine: --device auto: {reason}; running on the CPU");
        device.Dispose();
        return new CpuBackend(threads);
    }

    /// <summary>Why this model cannot run on the device (an unsupported weight type, a head too wide, too little
    /// memory for the weights alone), or null when it can.</summary>
    static string? WhyNotOnDevice(GpuDevice device, ModelConfig config, LlamaWeights weights)
    {
        if (Math.Max(config.HeadDim, config.ValueHeadDim) > AttentionKernels.MaxHeadDim)
            return $"{device.Description} has no attention kernel for heads wider than {AttentionKernels.MaxHeadDim}";
        var registry = new WeightKernelRegistry(device.Accelerator);
        long bytes = 0;
        foreach (var m in weights.Matrices())
        {
            if (!registry.Supports(m.Type)) return $"the GPU backend has no kernels for {m.Type} ({m.Name})";
            bytes += m.View.ByteSize; // the file's size of it: close enough to decide, and compiles no kernel
        }
        if (bytes > device.Accelerator.MemorySize)
            return $"the weights need {bytes >> 20} MiB, more than the {device.Accelerator.MemorySize >> 20} MiB of {device.Description}";
        return null;
    }
}
