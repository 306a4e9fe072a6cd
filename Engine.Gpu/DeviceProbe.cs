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
}
