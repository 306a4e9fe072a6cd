using ILGPU;
using ILGPU.Runtime;

namespace Engine.Gpu;

/// <summary>What ILGPU finds on this machine: every accelerator it can create, CPU included.</summary>
internal static class DeviceProbe
{
    public static IReadOnlyList<string> Describe()
    {
        using var context = Context.Create(builder => builder.Default().EnableAlgorithms());
        return context.Devices.Select(d => $"{d.AcceleratorType}: {d.Name} ({d.MemorySize / (1 << 20)} MiB)").ToList();
    }

    /// <summary>The memory of the device a --device choice would open (auto: the first GPU), with its name; null when
    /// there is none.</summary>
    public static (string Name, long Bytes)? Memory(DeviceChoice choice)
    {
        using var context = Context.Create(builder => builder.Default().EnableAlgorithms());
        var device = context.Devices.FirstOrDefault(d => choice switch
        {
            DeviceChoice.Cuda => d.AcceleratorType == AcceleratorType.Cuda,
            DeviceChoice.OpenCL => d.AcceleratorType == AcceleratorType.OpenCL,
            DeviceChoice.IlgpuCpu => d.AcceleratorType == AcceleratorType.CPU,
            _ => d.AcceleratorType is AcceleratorType.Cuda or AcceleratorType.OpenCL,
        });
        return device is null ? null : ($"{device.AcceleratorType}: {device.Name}", device.MemorySize);
    }
}
