using Engine.Gpu;

namespace Engine.Tests.Gpu;

/// <summary>The accelerator the GPU tests run on, shared by all of them (kernels compile once per process).
/// By default ILGPU's CPU accelerator, so the tests run everywhere; ENGINE_GPU_TEST_DEVICE=cuda (or opencl)
/// runs the same tests on a real device.</summary>
public sealed class GpuTestDevice : IDisposable
{
    public const string EnvironmentVariable = "ENGINE_GPU_TEST_DEVICE";

    public GpuDevice Device { get; } = GpuDevice.Open(Requested());

    static DeviceKind Requested() => Environment.GetEnvironmentVariable(EnvironmentVariable)?.ToLowerInvariant() switch
    {
        null or "" or "cpu" or "ilgpu-cpu" => DeviceKind.IlgpuCpu,
        "cuda" => DeviceKind.Cuda,
        "opencl" => DeviceKind.OpenCL,
        var other => throw new InvalidOperationException($"{EnvironmentVariable}={other}: expected cpu, cuda or opencl"),
    };

    public void Dispose() => Device.Dispose();
}

/// <summary>Every GPU test shares one device and runs one at a time (an accelerator's stream is not meant to be
/// driven from several threads at once).</summary>
[CollectionDefinition(Name)]
public sealed class GpuCollection : ICollectionFixture<GpuTestDevice>
{
    public const string Name = "Gpu";
}
