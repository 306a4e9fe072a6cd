using Engine.Formats;
using Engine.Gpu.Kernels.Float;
using Engine.Models;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels;

/// <summary>The device kernels of every weight type one accelerator supports. Each type's kernels are compiled
/// on first use, so a model pays only for the types it contains.</summary>
internal sealed class WeightKernelRegistry
{
    readonly Dictionary<GgmlType, Lazy<IWeightKernels>> _kernels = [];

    public Accelerator Accelerator { get; }

    public WeightKernelRegistry(Accelerator accelerator)
    {
        Accelerator = accelerator;
        Register(GgmlType.F32, () => new FloatWeightKernels<float, F32Element>(accelerator, GgmlType.F32));
        Register(GgmlType.F16, () => new FloatWeightKernels<ushort, F16Element>(accelerator, GgmlType.F16));
        Register(GgmlType.BF16, () => new FloatWeightKernels<ushort, BF16Element>(accelerator, GgmlType.BF16));

        // The quantized block types (Engine.Gpu/Kernels/Quantized/), each compiled when first needed.
        foreach (var (type, create) in Engine.Gpu.Kernels.Quantized.QuantizedWeightKernels.Factories(accelerator))
            Register(type, create);
    }

    /// <summary>Adds (or replaces) the kernels of one type; `create` runs once, when a matrix of that type is
    /// first seen.</summary>
    public void Register(GgmlType type, Func<IWeightKernels> create) => _kernels[type] = new Lazy<IWeightKernels>(create);

    public bool Supports(GgmlType type) => _kernels.ContainsKey(type);

    public IEnumerable<GgmlType> SupportedTypes => _kernels.Keys;

    /// <summary>The kernels for this matrix's type, or an error naming the tensor when the device has none.</summary>
    public IWeightKernels For(WeightMatrix w) =>
        _kernels.TryGetValue(w.Type, out var kernels) ? kernels.Value : throw new UnsupportedDeviceWeightException(w.Name, w.Type, SupportedTypes);
}
