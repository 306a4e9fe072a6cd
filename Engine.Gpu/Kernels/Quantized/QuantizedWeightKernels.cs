using Engine.Formats;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>Entry point for the weight-kernel registry: the kernels of every quantized block type implemented
/// here. <see cref="Factories"/> lets a registry compile a type's kernels only when a model contains it;
/// <see cref="Create"/> compiles them all.</summary>
internal static class QuantizedWeightKernels
{
    /// <summary>Every implemented type with a function that compiles its kernels for the accelerator.</summary>
    public static IReadOnlyList<(GgmlType Type, Func<IWeightKernels> Create)> Factories(Accelerator accelerator)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        return
        [
            Factory<Q8_0Decoder>(accelerator),
            Factory<Q4_0Decoder>(accelerator),
            Factory<Q5_0Decoder>(accelerator),
            Factory<Q4_KDecoder>(accelerator),
            Factory<Q6_KDecoder>(accelerator),
            Factory<Q4_1Decoder>(accelerator),
            Factory<Q5_1Decoder>(accelerator),
            Factory<Q5_KDecoder>(accelerator),
            Factory<Q2_KDecoder>(accelerator),
            Factory<Q3_KDecoder>(accelerator),
            Factory<IQ4_NLDecoder>(accelerator),
            Factory<IQ4_XSDecoder>(accelerator),
        ];
    }

    /// <summary>The kernels of every implemented type, all compiled now.</summary>
    public static IEnumerable<IWeightKernels> Create(Accelerator accelerator) =>
        Factories(accelerator).Select(f => f.Create()).ToList();

    static (GgmlType, Func<IWeightKernels>) Factory<TDecoder>(Accelerator accelerator) where TDecoder : struct, IBlockDecoder =>
        (TDecoder.Type, () => new BlockWeightKernels<TDecoder>(accelerator));
}
