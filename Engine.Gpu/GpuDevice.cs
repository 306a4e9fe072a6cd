using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace Engine.Gpu;

/// <summary>Which ILGPU accelerator to run on. IlgpuCpu is ILGPU's GPU simulator on the CPU: far slower than the
/// CPU backend, it exists so the device code can be tested on machines without a GPU.</summary>
internal enum DeviceKind { Cuda, OpenCL, IlgpuCpu }

/// <summary>An ILGPU context and one accelerator created in it; owns both.</summary>
internal sealed class GpuDevice : IDisposable
{
    public Context Context { get; }
    public Accelerator Accelerator { get; }
    public DeviceKind Kind { get; }
    public string Description => $"{Kind}: {Accelerator.Name} ({Accelerator.MemorySize / (1 << 20)} MiB)";

    GpuDevice(Context context, Accelerator accelerator, DeviceKind kind)
    {
        Context = context; Accelerator = accelerator; Kind = kind;
    }

    /// <summary>The first accelerator of that kind, or a <see cref="DeviceUnavailableException"/> saying what
    /// to do instead (never a hang or a native crash: ILGPU reports a missing driver as zero devices).</summary>
    public static GpuDevice Open(DeviceKind kind) => kind == DeviceKind.IlgpuCpu ? OpenCpuSimulator() : Open(kind, null);

    /// <summary>ILGPU's CPU accelerator with groups of `threadsPerGroup` threads, `parallelGroups` of them at once
    /// (0: one per core). Each simulated thread is an OS thread and a group barrier is an OS-level rendezvous,
    /// so small groups run far faster (4 threads: about 10x faster than ILGPU's default of 16); larger ones
    /// exercise the group reductions and tiles more thoroughly.</summary>
    public static GpuDevice OpenCpuSimulator(int threadsPerGroup = 4, int parallelGroups = 0) =>
        Open(DeviceKind.IlgpuCpu, new CPUDevice(threadsPerGroup, 1, parallelGroups > 0 ? parallelGroups : Environment.ProcessorCount));

    static GpuDevice Open(DeviceKind kind, CPUDevice? simulator)
    {
        var context = Context.Create(builder =>
        {
            builder.EnableAlgorithms();
            switch (kind)
            {
                case DeviceKind.Cuda: builder.Cuda(); break;
                case DeviceKind.OpenCL: builder.OpenCL(); break;
                default: builder.CPU(simulator ?? CPUDevice.Default); break;
            }
        });
        try
        {
            var wanted = kind switch
            {
                DeviceKind.Cuda => AcceleratorType.Cuda,
                DeviceKind.OpenCL => AcceleratorType.OpenCL,
                _ => AcceleratorType.CPU,
            };
            var device = context.Devices.FirstOrDefault(d => d.AcceleratorType == wanted);
            if (device is null) throw new DeviceUnavailableException(kind);
            return new GpuDevice(context, device.CreateAccelerator(context), kind);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>The best GPU present (CUDA first, then OpenCL), or null when there is none.</summary>
    public static GpuDevice? TryOpenAnyGpu()
    {
        foreach (var kind in new[] { DeviceKind.Cuda, DeviceKind.OpenCL })
        {
            try { return Open(kind); }
            catch (DeviceUnavailableException) { }
        }
        return null;
    }

    public void Dispose()
    {
        Accelerator.Dispose();
        Context.Dispose();
    }
}

/// <summary>The GPU device a model was to be loaded on is not there (no driver, no card): load it with
/// <c>GpuDevices.Auto</c> to fall back to the CPU, or on <c>ComputeDevice.Cpu</c>.</summary>
public sealed class DeviceUnavailableException : InvalidOperationException
{
    internal DeviceUnavailableException(DeviceKind kind)
        : base($"no {(kind == DeviceKind.Cuda ? "CUDA" : kind.ToString())} device was found " +
               "(see 'engine devices' for what is available); use --device cpu, or --device auto to fall back to the CPU") => Kind = kind;

    internal DeviceKind Kind { get; }
    /// <summary>The device that was asked for, as <c>GpuDevices.Parse</c> names it: cuda, opencl or ilgpu-cpu.</summary>
    public string Device => Kind switch { DeviceKind.Cuda => "cuda", DeviceKind.OpenCL => "opencl", _ => "ilgpu-cpu" };
}
