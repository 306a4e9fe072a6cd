using Engine.Formats;
using Engine.Gpu.Kernels;
using Engine.Gpu.Kernels.Quantized;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace Engine.Tests.Gpu.Quantized;

/// <summary>
/// The accelerator the quantized kernel tests run on: ILGPU's CPU accelerator (a simulated GPU: warps of 4,
/// groups of up to 16 threads) by default, so they run in CI without a GPU; the first CUDA device when
/// ENGINE_GPU_TEST_DEVICE=cuda. One per test run, shared by every test class of this folder, with the kernels of
/// every type compiled once.
/// </summary>
public sealed class QuantizedTestDevice : IDisposable
{
    public const string EnvironmentVariable = "ENGINE_GPU_TEST_DEVICE";

    public static bool WantsCuda =>
        string.Equals(Environment.GetEnvironmentVariable(EnvironmentVariable), "cuda", StringComparison.OrdinalIgnoreCase);

    static readonly Lazy<string?> CudaSkipReason = new(() =>
    {
        if (!WantsCuda) return null;
        try
        {
            using var context = Context.Create(b => b.Cuda());
            return context.GetCudaDevices().Count > 0 ? null : $"{EnvironmentVariable}=cuda but ILGPU finds no CUDA device";
        }
        catch (Exception e)
        {
            // A broken driver install is as much "no CUDA here" as a missing one; say which.
            return $"{EnvironmentVariable}=cuda but ILGPU cannot open CUDA: {e.Message}";
        }
    });

    /// <summary>Why the tests cannot run here, or null when they can.</summary>
    public static string? SkipReason => CudaSkipReason.Value;

    readonly Context _context;
    readonly Lazy<IReadOnlyDictionary<GgmlType, IWeightKernels>> _kernels;

    public QuantizedTestDevice()
    {
        if (WantsCuda)
        {
            _context = Context.Create(b => b.Cuda());
            Accelerator = _context.CreateCudaAccelerator(0);
        }
        else
        {
            _context = Context.Create(b => b.CPU());
            Accelerator = _context.CreateCPUAccelerator(0);
        }
        _kernels = new(() => QuantizedWeightKernels.Create(Accelerator).ToDictionary(k => k.Type));
    }

    public Accelerator Accelerator { get; }

    internal IReadOnlyDictionary<GgmlType, IWeightKernels> Kernels => _kernels.Value;

    public void Dispose()
    {
        Accelerator.Dispose();
        _context.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class QuantizedDeviceCollection : ICollectionFixture<QuantizedTestDevice>
{
    public const string Name = "Quantized GPU kernels";
}

/// <summary>A fact that is reported as skipped (not silently passed) when CUDA was asked for and is absent.</summary>
public sealed class DeviceFactAttribute : FactAttribute
{
    public DeviceFactAttribute()
    {
        if (QuantizedTestDevice.SkipReason is { } reason) Skip = reason;
    }
}

/// <summary>The theory counterpart of <see cref="DeviceFactAttribute"/>.</summary>
public sealed class DeviceTheoryAttribute : TheoryAttribute
{
    public DeviceTheoryAttribute()
    {
        if (QuantizedTestDevice.SkipReason is { } reason) Skip = reason;
    }
}
