namespace Engine.Backends.Cpu;

/// <summary>Plain scalar versions of the float kernels: slow, obvious, and the baseline the fast kernels are
/// tested against. Accumulation is in double so they are also the more accurate of the two.</summary>
internal static class ReferenceKernels
{
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float epsilon, Span<float> y)
    {
        // ggml_compute_forward_rms_norm_f32: float squares, double sum, float mean and scale.
        double sum = 0;
        for (int i = 0; i < x.Length; i++) sum += (double)(x[i] * x[i]);
        float mean = (float)(sum / x.Length);
        float scale = 1.0f / MathF.Sqrt(mean + epsilon);
        for (int i = 0; i < x.Length; i++) y[i] = x[i] * scale * weight[i];
    }

    /// <summary>Softmax that subtracts the maximum first, so large logits cannot overflow.</summary>
    public static void Softmax(ReadOnlySpan<float> x, Span<float> y)
    {
        float max = float.NegativeInfinity;
        for (int i = 0; i < x.Length; i++) max = Math.Max(max, x[i]);
        double sum = 0;
        for (int i = 0; i < x.Length; i++) { y[i] = MathF.Exp(x[i] - max); sum += y[i]; }
        for (int i = 0; i < x.Length; i++) y[i] = (float)(y[i] / sum);
    }

    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += (double)a[i] * b[i];
        return (float)sum;
    }

    public static void SwiGlu(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y)
    {
        for (int i = 0; i < y.Length; i++) y[i] = gate[i] / (1f + MathF.Exp(-gate[i])) * up[i];
    }

    /// <summary>Rotates one head in place by the angles of `position`.</summary>
    public static void RopeHead(Span<float> head, int position, RopeParameters rope)
    {
        var angles = new RopeAngles(rope);
        Span<float> cos = stackalloc float[rope.RotatedDims / 2];
        Span<float> sin = stackalloc float[rope.RotatedDims / 2];
        angles.Compute(position, cos, sin);
        RopeKernels.Rotate(head, cos, sin, rope.Style, rope.RotatedDims);
    }

    /// <summary>Attention of one query head over cached keys/values of positions [0, length).</summary>
    public static void AttendHead(ReadOnlySpan<float> query, Func<int, ReadOnlyMemory<float>> key, Func<int, ReadOnlyMemory<float>> value,
        int length, Span<float> output)
    {
        var scores = new float[length];
        float scale = 1f / MathF.Sqrt(query.Length);
        for (int j = 0; j < length; j++) scores[j] = Dot(query, key(j).Span) * scale;
        Softmax(scores, scores);
        output.Clear();
        for (int j = 0; j < length; j++)
        {
            var v = value(j).Span;
            for (int d = 0; d < output.Length; d++) output[d] += scores[j] * v[d];
        }
    }
}
