using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Engine.Quantization;

/// <summary>Scalar helpers shared by the reference quantizers, written to round exactly like ggml-quants.c.</summary>
internal static unsafe class QuantMath
{
    public const int QK_K = 256;
    public const float GroupMaxEps = 1e-15f;

    /// <summary>ggml's nearest_int: adding 1.5*2^23 puts the integer in the low mantissa bits, so the float
    /// addition itself rounds (to nearest, ties to even). Valid for |x| &lt;= 4194303.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int NearestInt(float x)
    {
        float v = x + 12582912f;
        return (BitConverter.SingleToInt32Bits(v) & 0x007fffff) - 0x00400000;
    }

    /// <summary>max |x[j]| over 32 floats (exact, so any evaluation order gives the same value).</summary>
    public static float AbsMax32(float* x)
    {
        if (Vector256.IsHardwareAccelerated)
        {
            var m = Vector256.Max(Vector256.Max(Vector256.Abs(Vector256.Load(x)), Vector256.Abs(Vector256.Load(x + 8))),
                                  Vector256.Max(Vector256.Abs(Vector256.Load(x + 16)), Vector256.Abs(Vector256.Load(x + 24))));
            var h = Vector128.Max(m.GetLower(), m.GetUpper());
            return MathF.Max(MathF.Max(h[0], h[1]), MathF.Max(h[2], h[3]));
        }
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = MathF.Max(amax, MathF.Abs(x[j]));
        return amax;
    }

    /// <summary>q[j] = round-half-even(x[j] * scale) for 32 values already known to fit in int8
    /// (what _mm256_round_ps with _MM_ROUND_NEAREST does).</summary>
    public static void ScaleRoundToInt8x32(float* x, float scale, sbyte* q)
    {
        if (Vector256.IsHardwareAccelerated)
        {
            var s = Vector256.Create(scale);
            var i0 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x) * s));
            var i1 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x + 8) * s));
            var i2 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x + 16) * s));
            var i3 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x + 24) * s));
            Vector256.Narrow(Vector256.Narrow(i0, i1), Vector256.Narrow(i2, i3)).Store(q);
            return;
        }
        for (int j = 0; j < 32; j++) q[j] = (sbyte)MathF.Round(x[j] * scale);
    }

    /// <summary>C's roundf: halves go away from zero (the reference Q8_0/Q8_1 quantizers use it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float RoundAway(float x) => MathF.Round(x, MidpointRounding.AwayFromZero);

    /// <summary>The 6-bit scale and min of sub-block j of a Q4_K/Q5_K super-block (get_scale_min_k4).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ScaleMinK4(int j, byte* q, out byte d, out byte m)
    {
        if (j < 4)
        {
            d = (byte)(q[j] & 63);
            m = (byte)(q[j + 4] & 63);
        }
        else
        {
            d = (byte)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
            m = (byte)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
        }
    }

    /// <summary>make_qx_quants: symmetric levels in [-nmax, nmax-1] (stored +nmax); rmseType 1 refines the scale over
    /// 18 nearby candidates, each value weighted by qw[i] when importance weights are given, else by x^2.</summary>
    public static float MakeQxQuants(int n, int nmax, float* x, sbyte* L, int rmseType, float* qw = null)
    {
        float max = 0, amax = 0;
        for (int i = 0; i < n; i++)
        {
            float ax = MathF.Abs(x[i]);
            if (ax > amax) { amax = ax; max = x[i]; }
        }
        if (amax < GroupMaxEps)
        {
            for (int i = 0; i < n; i++) L[i] = 0;
            return 0f;
        }
        float iscale = -nmax / max;
        if (rmseType == 0)
        {
            for (int i = 0; i < n; i++)
            {
                int l = NearestInt(iscale * x[i]);
                L[i] = (sbyte)(nmax + Math.Max(-nmax, Math.Min(nmax - 1, l)));
            }
            return 1 / iscale;
        }
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++)
        {
            int l = NearestInt(iscale * x[i]);
            l = Math.Max(-nmax, Math.Min(nmax - 1, l));
            L[i] = (sbyte)(l + nmax);
            float w = qw != null ? qw[i] : Weight(x[i], rmseType);
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        float scale = suml2 != 0 ? sumlx / suml2 : 0f;
        float best = scale * sumlx;
        for (int step = -9; step <= 9; step++)
        {
            if (step == 0) continue;
            iscale = -(nmax + 0.1f * step) / max;
            sumlx = suml2 = 0;
            for (int i = 0; i < n; i++)
            {
                int l = NearestInt(iscale * x[i]);
                l = Math.Max(-nmax, Math.Min(nmax - 1, l));
                float w = qw != null ? qw[i] : Weight(x[i], rmseType);
                sumlx += w * x[i] * l;
                suml2 += w * l * l;
            }
            if (suml2 > 0 && sumlx * sumlx > best * suml2)
            {
                for (int i = 0; i < n; i++)
                {
                    int l = NearestInt(iscale * x[i]);
                    L[i] = (sbyte)(nmax + Math.Max(-nmax, Math.Min(nmax - 1, l)));
                }
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        return scale;

        static float Weight(float v, int type) => type switch
        {
            1 => v * v,
            2 => 1,
            3 => MathF.Abs(v),
            _ => MathF.Sqrt(MathF.Abs(v)),
        };
    }

    /// <summary><see cref="MakeQxQuants"/> with rmseType 1 for eight groups of n values at once, bit for bit: vector lane g
    /// is group g and walks its own values in the scalar order, so every sum adds the same terms in the same order (no
    /// lane ever adds another's values). The 19 scale candidates are nearly all of Q6_K's quantizing cost, which a GPTQ
    /// folder's 151,936-row output head (233M values) pays at load: about 15 s on two cores with the scalar search.
    /// `x` is transposed, x[i * 8 + g] the i-th value of group g; `qw` likewise (null: weights x^2, the reference's);
    /// the levels go to L[g * n + i] (stored + nmax) and the scales to scales[g].</summary>
    public static void MakeQxQuants8(int n, int nmax, float* x, sbyte* L, float* scales, float* qw = null)
    {
        var max = Vector256<float>.Zero;
        var amax = Vector256<float>.Zero;
        for (int i = 0; i < n; i++)
        {
            var v = Vector256.Load(x + 8 * i);
            var ax = Vector256.Abs(v);
            var larger = Vector256.GreaterThan(ax, amax);
            amax = Vector256.ConditionalSelect(larger, ax, amax);
            max = Vector256.ConditionalSelect(larger, v, max);
        }
        var empty = Vector256.LessThan(amax, Vector256.Create(GroupMaxEps));
        var bestIscale = Vector256.Create((float)-nmax) / max;
        Sums(n, nmax, x, qw, bestIscale, out var sumlx, out var suml2);
        var scale = Vector256.ConditionalSelect(Vector256.Equals(suml2, Vector256<float>.Zero), Vector256<float>.Zero, sumlx / suml2);
        var best = scale * sumlx;
        for (int step = -9; step <= 9; step++)
        {
            if (step == 0) continue;
            var iscale = Vector256.Create(-(nmax + 0.1f * step)) / max;
            Sums(n, nmax, x, qw, iscale, out sumlx, out suml2);
            var better = Vector256.GreaterThan(suml2, Vector256<float>.Zero) & Vector256.GreaterThan(sumlx * sumlx, best * suml2);
            scale = Vector256.ConditionalSelect(better, sumlx / suml2, scale);
            best = Vector256.ConditionalSelect(better, scale * sumlx, best);
            bestIscale = Vector256.ConditionalSelect(better, iscale, bestIscale);
        }
        Vector256.ConditionalSelect(empty, Vector256<float>.Zero, scale).Store(scales);
        var emptyLanes = empty.AsInt32();
        int* levels = stackalloc int[8];
        for (int i = 0; i < n; i++)
        {
            var l = Vector256.ConditionalSelect(emptyLanes, Vector256<int>.Zero, Levels(bestIscale * Vector256.Load(x + 8 * i), nmax) + Vector256.Create(nmax));
            l.Store(levels);
            for (int g = 0; g < 8; g++) L[g * n + i] = (sbyte)levels[g];
        }

        // Σ w·x·l and Σ w·l·l per lane, each product in the scalar's order ((w·x)·l, (w·l)·l).
        static void Sums(int n, int nmax, float* x, float* qw, Vector256<float> iscale, out Vector256<float> sumlx, out Vector256<float> suml2)
        {
            sumlx = suml2 = Vector256<float>.Zero;
            for (int i = 0; i < n; i++)
            {
                var v = Vector256.Load(x + 8 * i);
                var l = Vector256.ConvertToSingle(Levels(iscale * v, nmax));
                var w = qw != null ? Vector256.Load(qw + 8 * i) : v * v;
                sumlx += w * v * l;
                suml2 += w * l * l;
            }
        }

        // NearestInt, clamped to [-nmax, nmax - 1].
        static Vector256<int> Levels(Vector256<float> scaled, int nmax)
        {
            var l = ((scaled + Vector256.Create(12582912f)).AsInt32() & Vector256.Create(0x007fffff)) - Vector256.Create(0x00400000);
            return Vector256.Max(Vector256.Create(-nmax), Vector256.Min(Vector256.Create(nmax - 1), l));
        }
    }

    /// <summary>make_q3_quants: like make_qx_quants(rmse) but refines levels one at a time (Q3_K).</summary>
    public static float MakeQ3Quants(int n, int nmax, float* x, sbyte* L, bool doRmse)
    {
        float max = 0, amax = 0;
        for (int i = 0; i < n; i++)
        {
            float ax = MathF.Abs(x[i]);
            if (ax > amax) { amax = ax; max = x[i]; }
        }
        if (amax < GroupMaxEps)
        {
            for (int i = 0; i < n; i++) L[i] = 0;
            return 0f;
        }
        float iscale = -nmax / max;
        if (doRmse)
        {
            float sumlx = 0, suml2 = 0;
            for (int i = 0; i < n; i++)
            {
                int l = NearestInt(iscale * x[i]);
                l = Math.Max(-nmax, Math.Min(nmax - 1, l));
                L[i] = (sbyte)l;
                float w = x[i] * x[i];
                sumlx += w * x[i] * l;
                suml2 += w * l * l;
            }
            for (int itry = 0; itry < 5; itry++)
            {
                int changed = 0;
                for (int i = 0; i < n; i++)
                {
                    float w = x[i] * x[i];
                    float slx = sumlx - w * x[i] * L[i];
                    if (slx > 0)
                    {
                        float sl2 = suml2 - w * L[i] * L[i];
                        int newL = NearestInt(x[i] * sl2 / slx);
                        newL = Math.Max(-nmax, Math.Min(nmax - 1, newL));
                        if (newL != L[i])
                        {
                            slx += w * x[i] * newL;
                            sl2 += w * newL * newL;
                            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2)
                            {
                                L[i] = (sbyte)newL; sumlx = slx; suml2 = sl2;
                                changed++;
                            }
                        }
                    }
                }
                if (changed == 0) break;
            }
            for (int i = 0; i < n; i++) L[i] += (sbyte)nmax;
            return suml2 > 0f ? sumlx / suml2 : 0f;
        }
        for (int i = 0; i < n; i++)
        {
            int l = NearestInt(iscale * x[i]);
            l = Math.Max(-nmax, Math.Min(nmax - 1, l));
            L[i] = (sbyte)(l + nmax);
        }
        return 1 / iscale;
    }

    /// <summary>make_qkx2_quants: asymmetric levels [0, nmax] with a min, searching nstep scales around
    /// nmax/(max-min) for the lowest weighted error. Returns the scale; theMin receives -min (&gt;= 0).</summary>
    public static float MakeQkx2Quants(int n, int nmax, float* x, float* weights, byte* L, out float theMin, byte* Laux,
        float rmin, float rdelta, int nstep, bool useMad)
    {
        float min = x[0], max = x[0];
        float sumW = weights[0];
        float sumX = sumW * x[0];
        for (int i = 1; i < n; i++)
        {
            if (x[i] < min) min = x[i];
            if (x[i] > max) max = x[i];
            float w = weights[i];
            sumW += w;
            sumX += w * x[i];
        }
        if (min > 0) min = 0;
        if (max == min)
        {
            for (int i = 0; i < n; i++) L[i] = 0;
            theMin = -min;
            return 0f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestError = 0;
        for (int i = 0; i < n; i++)
        {
            int l = NearestInt(iscale * (x[i] - min));
            L[i] = (byte)Math.Max(0, Math.Min(nmax, l));
            float diff = scale * L[i] + min - x[i];
            diff = useMad ? MathF.Abs(diff) : diff * diff;
            bestError += weights[i] * diff;
        }
        if (nstep < 1)
        {
            theMin = -min;
            return scale;
        }
        for (int step = 0; step <= nstep; step++)
        {
            iscale = (rmin + rdelta * step + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXL = 0;
            for (int i = 0; i < n; i++)
            {
                int l = NearestInt(iscale * (x[i] - min));
                l = Math.Max(0, Math.Min(nmax, l));
                Laux[i] = (byte)l;
                float w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXL += w * l * x[i];
            }
            float D = sumW * sumL2 - sumL * sumL;
            if (D > 0)
            {
                float thisScale = (sumW * sumXL - sumX * sumL) / D;
                float thisMin = (sumL2 * sumX - sumL * sumXL) / D;
                if (thisMin > 0)
                {
                    thisMin = 0;
                    thisScale = sumXL / sumL2;
                }
                float curError = 0;
                for (int i = 0; i < n; i++)
                {
                    float diff = thisScale * Laux[i] + thisMin - x[i];
                    diff = useMad ? MathF.Abs(diff) : diff * diff;
                    curError += weights[i] * diff;
                }
                if (curError < bestError)
                {
                    for (int i = 0; i < n; i++) L[i] = Laux[i];
                    bestError = curError;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin = -min;
        return scale;
    }

    /// <summary>make_qkx3_quants, as the importance-weighted quantizers call it (weights never null): ggml's body is
    /// <see cref="MakeQkx2Quants"/>'s with weights given (its `max &lt;= min` test is `max == min` here, since min is
    /// clamped to at most 0 and max is never below it), so this is that function. Returns the scale; theMin receives
    /// -min (&gt;= 0).</summary>
    public static float MakeQkx3Quants(int n, int nmax, float* x, float* weights, byte* L, out float theMin, byte* Laux,
        float rmin, float rdelta, int nstep, bool useMad) =>
        MakeQkx2Quants(n, nmax, x, weights, L, out theMin, Laux, rmin, rdelta, nstep, useMad);

    /// <summary>make_qp_quants: levels [0, nmax] for positive values (the sub-block scales and mins of Q2_K, Q4_K and
    /// Q5_K), weighted by quantWeights: the best of 9 scales, then up to 5 passes moving single levels.
    /// Levels are stored as bytes, truncated as C stores an int into a uint8_t.</summary>
    public static float MakeQpQuants(int n, int nmax, float* x, byte* L, float* quantWeights)
    {
        float max = 0;
        for (int i = 0; i < n; i++) max = max > x[i] ? max : x[i];
        if (max < GroupMaxEps)
        {
            for (int i = 0; i < n; i++) L[i] = 0;
            return 0f;
        }
        float iscale = nmax / max;
        for (int i = 0; i < n; i++) L[i] = (byte)NearestInt(iscale * x[i]);
        float scale = 1 / iscale;
        float bestMse = 0;
        for (int i = 0; i < n; i++)
        {
            float diff = x[i] - scale * L[i];
            float w = quantWeights[i];
            bestMse += w * diff * diff;
        }
        for (int step = -4; step <= 4; step++)
        {
            if (step == 0) continue;
            float iscaleStep = (0.1f * step + nmax) / max;
            float scaleStep = 1 / iscaleStep;
            float mse = 0;
            for (int i = 0; i < n; i++)
            {
                int l = Math.Min(nmax, NearestInt(iscaleStep * x[i]));
                float diff = x[i] - scaleStep * l;
                float w = quantWeights[i];
                mse += w * diff * diff;
            }
            if (mse < bestMse)
            {
                bestMse = mse;
                iscale = iscaleStep;
            }
        }
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++)
        {
            int l = Math.Min(nmax, NearestInt(iscale * x[i]));
            L[i] = (byte)l;
            float w = quantWeights[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        for (int itry = 0; itry < 5; itry++)
        {
            int changed = 0;
            for (int i = 0; i < n; i++)
            {
                float w = quantWeights[i];
                float slx = sumlx - w * x[i] * L[i];
                float sl2 = suml2 - w * L[i] * L[i];
                if (slx > 0 && sl2 > 0)
                {
                    int newL = Math.Min(nmax, NearestInt(x[i] * sl2 / slx));
                    if (newL != L[i])
                    {
                        slx += w * x[i] * newL;
                        sl2 += w * newL * newL;
                        if (slx * slx * suml2 > sumlx * sumlx * sl2)
                        {
                            L[i] = (byte)newL;
                            sumlx = slx;
                            suml2 = sl2;
                            changed++;
                        }
                    }
                }
            }
            if (changed == 0) break;
        }
        return suml2 > 0f ? sumlx / suml2 : 0f;
    }
}

/// <summary>What the importance-weighted quantizers (ggml's quantize_row_*_impl) share.</summary>
internal static unsafe class WeightedRow
{
    /// <summary>The argument checks of every QuantizeRowWeighted: whole blocks, room for the row, one importance
    /// value per element.</summary>
    public static void Check(ReadOnlySpan<float> x, Span<byte> dst, ReadOnlySpan<float> importance, int blockSize, long rowBytes)
    {
        if (x.Length % blockSize != 0) throw new ArgumentException($"row of {x.Length} values is not whole blocks of {blockSize}", nameof(x));
        if (dst.Length < rowBytes) throw new ArgumentException($"dst holds {dst.Length} bytes, {rowBytes} needed", nameof(dst));
        if (importance.Length != x.Length) throw new ArgumentException($"{importance.Length} importance values for a row of {x.Length}", nameof(importance));
    }

    /// <summary>sum(x^2) / n, summed in order (sigma2 of the 32-block quantizers: the whole row's mean square).</summary>
    public static float MeanSquare(float* x, int n)
    {
        float sum = 0;
        for (int j = 0; j < n; j++) sum += x[j] * x[j];
        return sum / n;
    }

    /// <summary>weight[j] = qw[j] * sqrt(sigma2 + x[j]^2): the importance of a column scaled by how far the value
    /// stands out of the row's spread, so large weights in important columns are kept best.</summary>
    public static void Weights(float* x, float* qw, float sigma2, float* weight, int n)
    {
        for (int j = 0; j < n; j++) weight[j] = qw[j] * MathF.Sqrt(sigma2 + x[j] * x[j]);
    }
}
