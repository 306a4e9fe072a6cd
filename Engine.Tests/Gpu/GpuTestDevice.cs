using Engine.Gpu;

namespace Engine.Tests.Gpu;

/// <summary>The accelerator the GPU tests run on, shared by all of them (kernels compile once per process).
/// By default ILGPU's CPU accelerator, so the tests run everywhere; ENGINE_GPU_TEST_DEVICE=cuda (or opencl)
/// runs the same tests on a real device.</summary>
public sealed class GpuTestDevice : IDisposable
{
    public const string EnvironmentVariable = "ENGINE_GPU_TEST_DEVICE";

    /// <summary>For the kernel tests: on the CPU simulator, groups of 16 threads (ILGPU's default), so the
    /// reductions and tiles take several steps.</summary>
    internal GpuDevice Device { get; }

    /// <summary>For whole forward passes: on the CPU simulator, groups of 16 threads run by both cores; on a
    /// real device the same device as <see cref="Device"/>.</summary>
    internal GpuDevice ModelDevice { get; }

    /// <summary>True when ENGINE_GPU_TEST_DEVICE picked a real accelerator (not the CPU simulator).</summary>
    public bool IsRealDevice => Device.Kind != DeviceKind.IlgpuCpu;

    public GpuTestDevice()
    {
        var requested = Requested();
        if (requested is DeviceKind kind)
        {
            Device = GpuDevice.Open(kind);
            ModelDevice = Device;
        }
        else
        {
            Device = GpuDevice.OpenCpuSimulator(threadsPerGroup: 16, parallelGroups: 1);
            ModelDevice = GpuDevice.OpenCpuSimulator(threadsPerGroup: 16);
        }
    }

    /// <summary>The real device asked for, or null for the CPU simulator.</summary>
    static DeviceKind? Requested() => Environment.GetEnvironmentVariable(EnvironmentVariable)?.ToLowerInvariant() switch
    {
        null or "" or "cpu" or "ilgpu-cpu" => null,
        "cuda" => DeviceKind.Cuda,
        "opencl" => DeviceKind.OpenCL,
        var other => throw new InvalidOperationException($"{EnvironmentVariable}={other}: expected cpu, cuda or opencl"),
    };

    public void Dispose()
    {
        if (!ReferenceEquals(ModelDevice, Device)) ModelDevice.Dispose();
        Device.Dispose();
    }
}

/// <summary>Every GPU test shares one device and runs one at a time (an accelerator's stream is not meant to be
/// driven from several threads at once).</summary>
[CollectionDefinition(Name)]
public sealed class GpuCollection : ICollectionFixture<GpuTestDevice>
{
    public const string Name = "Gpu";
}
