using System.Runtime.InteropServices;

namespace Engine.Quantization;

/// <summary>block_q8_K: the activation format of the k-quants. 256 int8 quants, a float scale, and the sums
/// of each group of 16 quants (bsums) so that the weight "min" terms cost one small dot per block.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ8_K
{
    public const int QK = 256;
    public float D;
    public fixed sbyte Qs[QK];
    public fixed short BSums[QK / 16];

    /// <summary>quantize_row_q8_K_ref: iscale = -127/max (max = the signed value of largest magnitude),
    /// q = nearest_int(iscale * x) (ties to even), d = 1/iscale.</summary>
    internal static void Quantize(float* x, BlockQ8_K* y, int k)
    {
        for (int i = 0; i < k / QK; i++, x += QK)
        {
            float max = 0, amax = 0;
            for (int j = 0; j < QK; j++)
            {
                float ax = MathF.Abs(x[j]);
                if (ax > amax) { amax = ax; max = x[j]; }
            }
            if (amax == 0)
            {
                // ggml leaves bsums untouched here; zero them so the block is deterministic (they are all-zero sums anyway).
                y[i] = default;
                continue;
            }
            float iscale = -127f / max;
            for (int j = 0; j < QK; j++)
                y[i].Qs[j] = (sbyte)Math.Min(127, QuantMath.NearestInt(iscale * x[j]));
            for (int j = 0; j < QK / 16; j++)
            {
                int sum = 0;
                for (int l = 0; l < 16; l++) sum += y[i].Qs[j * 16 + l];
                y[i].BSums[j] = (short)sum;
            }
            y[i].D = 1 / iscale;
        }
    }
}

/// <summary>block_q8_1: Q8_0 plus s = d * sum(qs), the activation format of Q4_1 and Q5_1 (their min term).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ8_1
{
    public const int QK = 32;
    public Half D;
    public Half S;
    public fixed sbyte Qs[QK];

    /// <summary>quantize_row_q8_1_ref: as Q8_0 (roundf), plus s = fp16(sum * d).</summary>
    internal static void Quantize(float* x, BlockQ8_1* y, int k)
    {
        for (int i = 0; i < k / QK; i++, x += QK)
        {
            float amax = 0;
            for (int j = 0; j < QK; j++) amax = Math.Max(amax, MathF.Abs(x[j]));
            float d = amax / 127;
            float id = d != 0 ? 1.0f / d : 0.0f;
            y[i].D = (Half)d;
            int sum = 0;
            for (int j = 0; j < QK; j++)
            {
                sbyte q = (sbyte)QuantMath.RoundAway(x[j] * id);
                y[i].Qs[j] = q;
                sum += q;
            }
            y[i].S = (Half)(sum * d);
        }
    }

    /// <summary>quantize_row_q8_1 of llama.cpp's x86 backend: as <see cref="Q8_0Format.QuantizeActivations"/>
    /// (127/amax, halves to even), plus s = fp16(d * sum).</summary>
    internal static void QuantizeActivations(float* x, BlockQ8_1* y, int k)
    {
        for (int i = 0; i < k / QK; i++, x += QK)
        {
            float amax = QuantMath.AbsMax32(x);
            float d = amax / 127;
            y[i].D = (Half)d;
            QuantMath.ScaleRoundToInt8x32(x, amax != 0 ? 127f / amax : 0f, y[i].Qs);
            int sum = 0;
            for (int j = 0; j < QK; j++) sum += y[i].Qs[j];
            y[i].S = (Half)(d * sum);
        }
    }
}
