using ILGPU.Runtime;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>Entry point for the weight-kernel registry: the kernels of every quantized block type implemented
/// here, compiled for one accelerator.</summary>
public static class QuantizedWeightKernels
{
    public static IEnumerable<IWeightKernels> Create(Accelerator accelerator)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        return
        [
            new BlockWeightKernels<Q8_0Decoder>(accelerator),
            new BlockWeightKernels<Q4_0Decoder>(accelerator),
            new BlockWeightKernels<Q5_0Decoder>(accelerator),
            new BlockWeightKernels<Q4_KDecoder>(accelerator),
            new BlockWeightKernels<Q6_KDecoder>(accelerator),
            new BlockWeightKernels<Q4_1Decoder>(accelerator),
            new BlockWeightKernels<Q5_1Decoder>(accelerator),
            new BlockWeightKernels<Q5_KDecoder>(accelerator),
            new BlockWeightKernels<Q2_KDecoder>(accelerator),
            new BlockWeightKernels<Q3_KDecoder>(accelerator),
            new BlockWeightKernels<IQ4_NLDecoder>(accelerator),
            new BlockWeightKernels<IQ4_XSDecoder>(accelerator),
        ];
    }
}
