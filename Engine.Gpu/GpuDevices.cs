using System.Text;
using Engine.Models;

namespace Engine.Gpu;

/// <summary>The GPU devices a model can be loaded on (<see cref="ModelLoadOptions.Device"/>), through ILGPU: no native
/// library is needed beyond the GPU's own driver.
/// <code>
/// using var model = Model.Load(path, new ModelLoadOptions { Device = GpuDevices.Auto });
/// </code></summary>
public static class GpuDevices
{
    /// <summary>The first CUDA device; loading fails with a clear error when there is none.</summary>
    public static ComputeDevice Cuda { get; } = new GpuComputeDevice(DeviceChoice.Cuda, "cuda");
    /// <summary>The first OpenCL device; loading fails with a clear error when there is none.</summary>
    public static ComputeDevice OpenCL { get; } = new GpuComputeDevice(DeviceChoice.OpenCL, "opencl");
    /// <summary>A GPU when one is present and can run the model (with as many layers as fit), otherwise the CPU; the
    /// choice and its reason are reported through <see cref="ModelLoadOptions.Progress"/>.</summary>
    public static ComputeDevice Auto { get; } = new GpuComputeDevice(DeviceChoice.Auto, "auto");
    /// <summary>The GPU code run on ILGPU's CPU accelerator: slow, for tests and for seeing GPU behaviour without a GPU.</summary>
    public static ComputeDevice CpuAccelerator { get; } = new GpuComputeDevice(DeviceChoice.IlgpuCpu, "ilgpu-cpu");

    /// <summary>The names <see cref="Parse"/> accepts.</summary>
    public const string Names = DeviceSelection.Names;

    /// <summary>A device by the name the <c>engine</c> command uses: cpu, cuda, opencl, auto or ilgpu-cpu.</summary>
    /// <param name="name">The name, in any case.</param>
    /// <exception cref="ArgumentException">The name is none of those.</exception>
    public static ComputeDevice Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!DeviceSelection.TryParse(name, out var choice))
            throw new ArgumentException($"the device must be {Names}, got '{name}'", nameof(name));
        return For(choice);
    }

    /// <summary>The device for a parsed --device choice.</summary>
    internal static ComputeDevice For(DeviceChoice choice) => choice switch
    {
        DeviceChoice.Cpu => ComputeDevice.Cpu,
        DeviceChoice.Cuda => Cuda,
        DeviceChoice.OpenCL => OpenCL,
        DeviceChoice.Auto => Auto,
        _ => CpuAccelerator,
    };

    sealed class GpuComputeDevice(DeviceChoice choice, string name) : ComputeDevice
    {
        public override string Name => name;

        internal override Func<ModelConfig, LlamaWeights, IReadOnlyList<LayerStage>>? StageFactory(ModelLoadOptions options, Action<string> log) =>
            DeviceSelection.StageFactory(choice, options.Threads, options.GpuLayers, new LineWriter(log), options.RepackWeights);
    }

    /// <summary>Hands each line the device selection writes to a progress callback, without the command's "engine: " prefix.</summary>
    sealed class LineWriter(Action<string> line) : TextWriter
    {
        readonly StringBuilder _pending = new();
        public override Encoding Encoding => Encoding.UTF8;
        public override void Write(char value)
        {
            if (value == '\n') { var text = _pending.ToString().TrimEnd('\r'); _pending.Clear(); line(text.StartsWith("engine: ", StringComparison.Ordinal) ? text[8..] : text); }
            else _pending.Append(value);
        }
    }
}
