using Engine.Models;

namespace Engine.Backends.Cpu;

/// <summary>The angles RoPE rotates by: for pair i of a head at position p, theta = p * base^(-2i/d),
/// adjusted by the model's context scaling. Computed as llama.cpp does (float, theta multiplied by a
/// constant ratio pair after pair) so that results agree to the last bits where possible.</summary>
internal readonly struct RopeAngles
{
    readonly RopeParameters _rope;
    readonly float _thetaScale, _freqScale, _extFactor, _attnFactor, _corrLow, _corrHigh;

    public RopeAngles(RopeParameters rope)
    {
        _rope = rope;
        _thetaScale = MathF.Pow((float)rope.Theta, -2.0f / rope.RotatedDims);
        var s = rope.Scaling;
        _freqScale = s.Type is RopeScalingType.Linear or RopeScalingType.Yarn ? (float)(1.0 / s.Factor) : 1f;
        _extFactor = s.Type == RopeScalingType.Yarn ? 1f : 0f;
        _attnFactor = 1f;
        _corrLow = 0; _corrHigh = 0;
        if (s.Type == RopeScalingType.Yarn)
        {
            int original = s.OriginalContextLength > 0 ? s.OriginalContextLength : 4096;
            float CorrDim(double rotations) => (float)(rope.RotatedDims * Math.Log(original / (rotations * 2 * Math.PI)) / (2 * Math.Log(rope.Theta)));
            _corrLow = MathF.Max(0, MathF.Floor(CorrDim(s.YarnBetaFast)));
            _corrHigh = MathF.Min(rope.RotatedDims - 1, MathF.Ceiling(CorrDim(s.YarnBetaSlow)));
            if (s.YarnAttentionFactor > 0) _attnFactor = (float)s.YarnAttentionFactor;
        }
    }

    /// <summary>The same angles as a rate per position: pair i turns by position * rates[i] (the exact product,
    /// where <see cref="Compute"/> multiplies step by step, so the two agree to float rounding), and every cos
    /// and sin is scaled by <see cref="MagnitudeScale"/>. For backends that compute the angles on a device from
    /// the positions alone.</summary>
    public void AngleRates(Span<float> rates)
    {
        float frequency = 1f;
        var factors = _rope.FrequencyFactors;
        for (int i = 0; i < rates.Length; i++)
        {
            float extrapolated = factors is null ? frequency : frequency / factors[i];
            float rate = _freqScale * extrapolated;
            if (_extFactor != 0)
            {
                float y = (i - _corrLow) / MathF.Max(0.001f, _corrHigh - _corrLow);
                float ramp = (1 - MathF.Min(1, MathF.Max(0, y))) * _extFactor;
                rate = rate * (1 - ramp) + extrapolated * ramp;
            }
            rates[i] = rate;
            frequency *= _thetaScale;
        }
    }

    /// <summary>The factor every cos and sin is multiplied by (1 except for YaRN).</summary>
    public float MagnitudeScale => _extFactor != 0 ? _attnFactor * (1.0f + 0.1f * MathF.Log(1.0f / _freqScale)) : _attnFactor;

    /// <summary>cos and sin for each of the RotatedDims/2 pairs at this position.</summary>
    public void Compute(int position, Span<float> cos, Span<float> sin)
    {
        float theta = position;
        var factors = _rope.FrequencyFactors;
        for (int i = 0; i < cos.Length; i++)
        {
            float extrapolated = factors is null ? theta : theta / factors[i];
            float interpolated = _freqScale * extrapolated;
            float angle = interpolated, mscale = _attnFactor;
            if (_extFactor != 0)
            {
                float y = (i - _corrLow) / MathF.Max(0.001f, _corrHigh - _corrLow);
                float ramp = (1 - MathF.Min(1, MathF.Max(0, y))) * _extFactor;
                angle = interpolated * (1 - ramp) + extrapolated * ramp;
                mscale *= 1.0f + 0.1f * MathF.Log(1.0f / _freqScale);
            }
            cos[i] = MathF.Cos(angle) * mscale;
            sin[i] = MathF.Sin(angle) * mscale;
            theta *= _thetaScale;
        }
    }
}

internal static class RopeKernels
{
    /// <summary>Rotates the first rotatedDims of one head: adjacent pairs (Normal) or halves (NeoX).</summary>
    public static void Rotate(Span<float> head, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, RopeStyle style, int rotatedDims)
    {
        int half = rotatedDims / 2;
        for (int i = 0; i < half; i++)
        {
            int a = style == RopeStyle.Normal ? 2 * i : i;
            int b = style == RopeStyle.Normal ? 2 * i + 1 : i + half;
            float x0 = head[a], x1 = head[b];
            head[a] = x0 * cos[i] - x1 * sin[i];
            head[b] = x0 * sin[i] + x1 * cos[i];
        }
    }
}
