using System.Numerics.Tensors;

namespace Engine.Sampling;

internal sealed partial class Sampler
{
    /// <summary>Index of the largest value; ties go to the lowest index (so greedy decoding is reproducible).
    /// NaN is never chosen (it compares false); callers reject NaN before.</summary>
    public static int Argmax(ReadOnlySpan<float> values)
    {
        if (values.IsEmpty) throw new ArgumentException("empty span", nameof(values));
        var best = 0;
        var bestValue = values[0];
        for (var i = 1; i < values.Length; i++)
            if (values[i] > bestValue) { best = i; bestValue = values[i]; }
        return best;
    }

    /// <summary>
    /// Numerically stable softmax: exp(x - max) / Σ exp(x - max). Subtracting the max keeps every exponent ≤ 0,
    /// so logits like 1e4 do not overflow (TensorPrimitives.SoftMax does not subtract it), and -inf maps to 0.
    /// </summary>
    /// <exception cref="ArgumentException">NaN or +inf in <paramref name="src"/>, every value -inf, or spans of different lengths.</exception>
    public static void Softmax(ReadOnlySpan<float> src, Span<float> dst) => SoftmaxWithTemperature(src, dst, 1f);

    /// <summary>Softmax of x / <paramref name="temperature"/>, computed as exp((x - max) / T) so that a tiny T
    /// sends non-maximal logits to -inf (probability 0) instead of overflowing to NaN.</summary>
    static void SoftmaxWithTemperature(ReadOnlySpan<float> src, Span<float> dst, float temperature)
    {
        if (src.IsEmpty) throw new ArgumentException("empty span", nameof(src));
        if (dst.Length != src.Length) throw new ArgumentException("destination length differs from source", nameof(dst));

        var max = TensorPrimitives.Max(src); // NaN if any NaN
        if (float.IsNaN(max) || float.IsPositiveInfinity(max))
            throw new ArgumentException($"softmax input contains {max}", nameof(src));
        if (float.IsNegativeInfinity(max))
            throw new ArgumentException("every softmax input is -inf: no value has non-zero probability", nameof(src));

        TensorPrimitives.Subtract(src, max, dst);
        if (temperature != 1f) TensorPrimitives.Divide(dst, temperature, dst);
        TensorPrimitives.Exp(dst, dst);
        var sum = TensorPrimitives.Sum((ReadOnlySpan<float>)dst); // >= 1: the max contributes exp(0)
        TensorPrimitives.Divide(dst, sum, dst);
    }
}
