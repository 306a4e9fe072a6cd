using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace Engine.Backends.Cpu;

/// <summary>RMSNorm computed the way ggml does it: squares in float, their sum in double, mean and scale in
/// float. The order matters more than it looks: a quantized matmul downstream rounds these values to 8-bit
/// levels, and one last-bit difference in the scale can move a value across a rounding tie.</summary>
internal static class NormKernels
{
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float epsilon, Span<float> y)
    {
        float mean = (float)(SumOfSquaresAsDouble(x) / x.Length);
        float scale = 1.0f / MathF.Sqrt(mean + epsilon);
        TensorPrimitives.Multiply(x, scale, y);
        TensorPrimitives.Multiply(y, weight, y);
    }

    /// <summary>Σ (double)(x[i]*x[i]), each square rounded to float first as ggml does. Four double lanes
    /// change only the order of double additions, which cannot show in the float result for rows of
    /// realistic width.</summary>
    public static double SumOfSquaresAsDouble(ReadOnlySpan<float> x)
    {
        int i = 0;
        double sum = 0;
        if (Vector256.IsHardwareAccelerated && x.Length >= 8)
        {
            var acc0 = Vector256<double>.Zero;
            var acc1 = Vector256<double>.Zero;
            ref float start = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(x);
            for (; i + 8 <= x.Length; i += 8)
            {
                var v = Vector256.LoadUnsafe(ref start, (nuint)i);
                var (lo, hi) = Vector256.Widen(v * v);
                acc0 += lo;
                acc1 += hi;
            }
            sum = Vector256.Sum(acc0 + acc1);
        }
        for (; i < x.Length; i++) sum += (double)(x[i] * x[i]);
        return sum;
    }
}
