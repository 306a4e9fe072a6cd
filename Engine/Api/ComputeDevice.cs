using Engine.Models;

namespace Engine;

/// <summary>Where a model runs. <see cref="Cpu"/> is built in; the Engine.Gpu package adds CUDA, OpenCL and
/// automatic selection through its <c>GpuDevices</c> class, so this package carries no GPU library.</summary>
public abstract class ComputeDevice
{
    /// <summary>Only this assembly and Engine.Gpu define devices: the way a device builds its backends is internal.</summary>
    internal ComputeDevice() { }

    /// <summary>The CPU backend with SIMD kernels (the default).</summary>
    public static ComputeDevice Cpu { get; } = new CpuDevice();

    /// <summary>The device's name as the <c>engine</c> command spells it: cpu, cuda, opencl, auto, ilgpu-cpu.</summary>
    public abstract string Name { get; }

    /// <summary>The backends that run the model's layers, in order, or null for the CPU backend alone.</summary>
    internal abstract Func<ModelConfig, LlamaWeights, IReadOnlyList<LayerStage>>? StageFactory(ModelLoadOptions options, Action<string> log);

    /// <inheritdoc/>
    public override string ToString() => Name;

    sealed class CpuDevice : ComputeDevice
    {
        public override string Name => "cpu";

        internal override Func<ModelConfig, LlamaWeights, IReadOnlyList<LayerStage>>? StageFactory(ModelLoadOptions options, Action<string> log)
        {
            if (options.GpuLayers > 0) log("GpuLayers has no effect on the CPU device");
            return null;
        }
    }
}
