using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels;

/// <summary>RMSNorm on the device: one group per row. The sum of squares is float32 in a tree order (the CPU
/// backend sums in double, as ggml's CPU code), so the two agree to a few float ulps, not bit for bit.</summary>
internal sealed class NormKernels
{
    readonly GroupShape _shape;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float> _rmsNorm;

    public NormKernels(Accelerator accelerator, GroupShape shape)
    {
        _shape = shape;
        _rmsNorm = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float>(RmsNormKernel);
    }

    /// <summary>y[r] = x[r] / rms(x[r]) * weight for `rows` rows of `width`; y may be x.</summary>
    public void RmsNorm(ArrayView<float> x, ArrayView<float> weight, int rows, int width, float epsilon, ArrayView<float> y) =>
        _rmsNorm(new KernelConfig(rows, _shape.GroupSize), x, weight, y, width, epsilon);

    static void RmsNormKernel(ArrayView<float> x, ArrayView<float> weight, ArrayView<float> y, int width, float epsilon)
    {
        var scratch = SharedMemory.Allocate<float>(GroupShape.MaxGroupSize);
        long start = (long)Grid.IdxX * width;
        float sum = 0;
        for (int c = Group.IdxX; c < width; c += Group.DimX)
        {
            float v = x[start + c];
            sum += v * v;
        }
        float total = GroupReduction.Sum(scratch, sum);
        float scale = 1f / XMath.Sqrt(total / width + epsilon);
        // Each thread rewrites only the elements it read, after the reduction, so y may alias x.
        for (int c = Group.IdxX; c < width; c += Group.DimX)
            y[start + c] = x[start + c] * scale * weight[c];
    }
}
