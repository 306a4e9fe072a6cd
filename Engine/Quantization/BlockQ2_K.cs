using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Formats;
using static Engine.Quantization.QuantMath;

namespace Engine.Quantization;

/// <summary>block_q2_K: 256 2-bit quants in 16 sub-blocks of 16; scales[j] holds sub-block j's 4-bit scale (low
/// nibble) and 4-bit min (high nibble); value = d * scale * q - dmin * min with q in [0, 3]. Each 32 bytes of qs
/// hold a 128-element half: bits 2c..2c+1 of qs[l] are element 32c + l of that half.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ2_K
{
    public fixed byte Scales[QK_K / 16];
    public fixed byte Qs[QK_K / 4];
    public Half D;
    public Half DMin;
}

internal sealed unsafe class Q2_KFormat : RowFormat, IWeightQuantizer
{
    public static readonly Q2_KFormat Instance = new();
    Q2_KFormat() : base(GgmlType.Q2_K, GgmlType.Q8_K) { }

    /// <summary>quantize_row_q2_K_ref.</summary>
    public void QuantizeRowReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        if (src.Length % QK_K != 0 || dst.Length < RowBytes(src.Length)) throw new ArgumentException("bad row length");
        const float q4scale = 15f;
        byte* L = stackalloc byte[QK_K];
        byte* Laux = stackalloc byte[16];
        float* weights = stackalloc float[16];
        float* mins = stackalloc float[QK_K / 16];
        float* scales = stackalloc float[QK_K / 16];
        fixed (float* xp = src) fixed (byte* yp = dst)
        {
            float* x = xp;
            var y = (BlockQ2_K*)yp;
            for (int i = 0; i < src.Length / QK_K; i++, x += QK_K)
            {
                // Both are >= 0: the min is subtracted, so scales come out positive.
                float maxScale = 0, maxMin = 0;
                for (int j = 0; j < QK_K / 16; j++)
                {
                    for (int l = 0; l < 16; l++) weights[l] = MathF.Abs(x[16 * j + l]);
                    scales[j] = MakeQkx2Quants(16, 3, x + 16 * j, weights, L + 16 * j, out mins[j], Laux, -0.5f, 0.1f, 15, true);
                    if (scales[j] > maxScale) maxScale = scales[j];
                    if (mins[j] > maxMin) maxMin = mins[j];
                }
                if (maxScale > 0)
                {
                    float iscale = q4scale / maxScale;
                    for (int j = 0; j < QK_K / 16; j++) y[i].Scales[j] = (byte)NearestInt(iscale * scales[j]);
                    y[i].D = (Half)(maxScale / q4scale);
                }
                else
                {
                    for (int j = 0; j < QK_K / 16; j++) y[i].Scales[j] = 0;
                    y[i].D = (Half)0f;
                }
                if (maxMin > 0)
                {
                    float iscale = q4scale / maxMin;
                    for (int j = 0; j < QK_K / 16; j++) y[i].Scales[j] |= (byte)(NearestInt(iscale * mins[j]) << 4);
                    y[i].DMin = (Half)(maxMin / q4scale);
                }
                else
                {
                    y[i].DMin = (Half)0f;
                }
                for (int j = 0; j < QK_K / 16; j++)
                {
                    float d = Fp16.ToSingle(y[i].D) * (y[i].Scales[j] & 0xF);
                    if (d == 0) continue;
                    float dm = Fp16.ToSingle(y[i].DMin) * (y[i].Scales[j] >> 4);
                    for (int ii = 0; ii < 16; ii++)
                        L[16 * j + ii] = (byte)Math.Max(0, Math.Min(3, NearestInt((x[16 * j + ii] + dm) / d)));
                }
                PackTwoBitQuants(L, y[i].Qs);
            }
        }
    }

    /// <summary>quantize_row_q2_K_impl: each sub-block of 16 by make_qkx3_quants weighted by
    /// importance * sqrt(sigma2 + x^2) (sigma2 the super-block's mean square), then the 16 scales and the 16 mins by
    /// make_qp_quants weighted by each sub-block's total weight, and every value requantized with the stored scales.</summary>
    public void QuantizeRowWeighted(ReadOnlySpan<float> src, Span<byte> dst, ReadOnlySpan<float> importance)
    {
        WeightedRow.Check(src, dst, importance, QK_K, RowBytes(src.Length));
        byte* L = stackalloc byte[QK_K];
        byte* Laux = stackalloc byte[16];
        float* mins = stackalloc float[QK_K / 16];
        float* scales = stackalloc float[QK_K / 16];
        float* sw = stackalloc float[QK_K / 16];
        float* weight = stackalloc float[16];
        byte* Ls = stackalloc byte[QK_K / 16];
        byte* Lm = stackalloc byte[QK_K / 16];
        fixed (float* xp = src) fixed (float* qwp = importance) fixed (byte* yp = dst)
        {
            float* x = xp;
            var y = (BlockQ2_K*)yp;
            for (int i = 0; i < src.Length / QK_K; i++, x += QK_K)
            {
                float sumx2 = 0;
                for (int j = 0; j < QK_K; j++) sumx2 += x[j] * x[j];
                float sigma2 = sumx2 / QK_K;
                for (int j = 0; j < QK_K / 16; j++)
                {
                    WeightedRow.Weights(x + 16 * j, qwp + QK_K * i + 16 * j, sigma2, weight, 16);
                    sw[j] = 0;
                    for (int l = 0; l < 16; l++) sw[j] += weight[l];
                    scales[j] = MakeQkx3Quants(16, 3, x + 16 * j, weight, L + 16 * j, out mins[j], Laux, -0.9f, 0.05f, 36, false);
                }
                float dm = MakeQpQuants(QK_K / 16, 15, scales, Ls, sw);
                float mm = MakeQpQuants(QK_K / 16, 15, mins, Lm, sw);
                y[i].D = (Half)dm;
                y[i].DMin = (Half)mm;
                dm = Fp16.ToSingle(y[i].D);
                mm = Fp16.ToSingle(y[i].DMin);
                for (int j = 0; j < QK_K / 16; j++) y[i].Scales[j] = (byte)(Ls[j] | (Lm[j] << 4));
                for (int j = 0; j < QK_K / 16; j++)
                {
                    float d = dm * (y[i].Scales[j] & 0xF);
                    if (d == 0) continue;
                    float m = mm * (y[i].Scales[j] >> 4);
                    for (int ii = 0; ii < 16; ii++)
                        L[16 * j + ii] = (byte)Math.Max(0, Math.Min(3, NearestInt((x[16 * j + ii] + m) / d)));
                }
                PackTwoBitQuants(L, y[i].Qs);
            }
        }
    }

    /// <summary>Packs 256 values in [0, 3] the way Q2_K and Q3_K store their low bits: per 128-element half,
    /// byte l carries elements l, l+32, l+64, l+96 in bit pairs 0, 2, 4, 6.</summary>
    internal static void PackTwoBitQuants(byte* L, byte* qs)
    {
        for (int j = 0; j < QK_K; j += 128, qs += 32)
            for (int l = 0; l < 32; l++)
                qs[l] = (byte)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }

    private protected override void QuantizeActivationsCore(float* x, byte* dst, int k) => BlockQ8_K.Quantize(x, (BlockQ8_K*)dst, k);

    private protected override void DequantizeReferenceCore(byte* row, float* y, int k)
    {
        var x = (BlockQ2_K*)row;
        for (int i = 0; i < k / QK_K; i++)
        {
            float d = Fp16.ToSingle(x[i].D), min = Fp16.ToSingle(x[i].DMin);
            byte* q = x[i].Qs;
            byte* sc = x[i].Scales;
            for (int n = 0; n < QK_K; n += 128, q += 32)
                for (int shift = 0; shift < 8; shift += 2)
                {
                    float dl = d * (*sc & 0xF), ml = min * (*sc++ >> 4);
                    for (int l = 0; l < 16; l++) *y++ = dl * ((q[l] >> shift) & 3) - ml;
                    dl = d * (*sc & 0xF); ml = min * (*sc++ >> 4);
                    for (int l = 16; l < 32; l++) *y++ = dl * ((q[l] >> shift) & 3) - ml;
                }
        }
    }

    private protected override void DequantizeCore(byte* row, float* y, int k)
    {
        if (!Avx2.IsSupported) { DequantizeReferenceCore(row, y, k); return; }
        var x = (BlockQ2_K*)row;
        var m3 = Vector256.Create((byte)3);
        for (int i = 0; i < k / QK_K; i++)
        {
            float d = Fp16.ToSingle(x[i].D), min = Fp16.ToSingle(x[i].DMin);
            byte* sc = x[i].Scales;
            for (int half = 0; half < 2; half++)
            {
                var bits = Vector256.Load(x[i].Qs + 32 * half).AsUInt16();
                for (int shift = 0; shift < 8; shift += 2, sc += 2, y += 32)
                {
                    var q = Vector256.ShiftRightLogical(bits, shift).AsByte() & m3;
                    StoreAffine16x2(q, d * (sc[0] & 0xF), min * (sc[0] >> 4), d * (sc[1] & 0xF), min * (sc[1] >> 4), y);
                }
            }
        }
    }

    /// <summary>dst[i] = d * q[i] - m for 32 unsigned bytes, the first 16 with (dA, mA), the last 16 with (dB, mB);
    /// multiply then subtract (no FMA), as the reference does.</summary>
    static void StoreAffine16x2(Vector256<byte> q, float dA, float mA, float dB, float mB, float* dst)
    {
        var (s0, s1) = Vector256.Widen(q);
        var (i0, i1) = Vector256.Widen(s0);
        var (i2, i3) = Vector256.Widen(s1);
        (Vector256.ConvertToSingle(i0.AsInt32()) * Vector256.Create(dA) - Vector256.Create(mA)).Store(dst);
        (Vector256.ConvertToSingle(i1.AsInt32()) * Vector256.Create(dA) - Vector256.Create(mA)).Store(dst + 8);
        (Vector256.ConvertToSingle(i2.AsInt32()) * Vector256.Create(dB) - Vector256.Create(mB)).Store(dst + 16);
        (Vector256.ConvertToSingle(i3.AsInt32()) * Vector256.Create(dB) - Vector256.Create(mB)).Store(dst + 24);
    }

    /// <summary>ggml_vec_dot_q2_K_q8_K_generic: one integer sum per block, then dall * isum - dmin * summs.</summary>
    private protected override float DotReferenceCore(byte* row, byte* act, int k)
    {
        var x = (BlockQ2_K*)row;
        var y = (BlockQ8_K*)act;
        float sumf = 0;
        for (int i = 0; i < k / QK_K; i++)
        {
            byte* q2 = x[i].Qs;
            sbyte* q8 = y[i].Qs;
            byte* sc = x[i].Scales;
            int summs = 0;
            for (int j = 0; j < 16; j++) summs += y[i].BSums[j] * (sc[j] >> 4);
            float dall = y[i].D * Fp16.ToSingle(x[i].D);
            float dmin = y[i].D * Fp16.ToSingle(x[i].DMin);
            int isum = 0;
            for (int n = 0; n < QK_K / 128; n++, q2 += 32)
                for (int shift = 0; shift < 8; shift += 2, q8 += 32)
                {
                    int isuml = 0;
                    for (int l = 0; l < 16; l++) isuml += q8[l] * ((q2[l] >> shift) & 3);
                    isum += (*sc++ & 0xF) * isuml;
                    isuml = 0;
                    for (int l = 16; l < 32; l++) isuml += q8[l] * ((q2[l] >> shift) & 3);
                    isum += (*sc++ & 0xF) * isuml;
                }
            sumf += dall * isum - dmin * summs;
        }
        return sumf;
    }

    /// <summary>ggml_vec_dot_q2_K_q8_K's AVX2 order: per block, the min term (8 lanes of two bsums each) is
    /// FMA'd into the accumulator first, then the scale term (8 lanes of 4 adjacent elements per 32-byte
    /// group); one horizontal sum at the end.</summary>
    private protected override float DotCore(byte* row, byte* act, int k)
    {
        if (!Simd.Avx2Fma) return Simd.V128 ? DotV128(row, act, k) : DotReferenceCore(row, act, k);
        var x = (BlockQ2_K*)row;
        var y = (BlockQ8_K*)act;
        var m3 = Vector256.Create((byte)3);
        var m4 = Vector128.Create((byte)0x0F);
        Vector256<float> acc = default;
        for (int i = 0; i < k / QK_K; i++)
        {
            float d = y[i].D * Fp16.ToSingle(x[i].D);
            float dmin = -y[i].D * Fp16.ToSingle(x[i].DMin);

            var packed = Vector128.Load(x[i].Scales);
            var mins16 = Avx2.ConvertToVector256Int16(Vector128.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & m4);
            var minTerm = Avx2.MultiplyAddAdjacent(mins16, Vector256.Load(y[i].BSums));
            acc = Fma.MultiplyAdd(Vector256.Create(dmin), Avx.ConvertToVector256Single(minTerm), acc);

            byte* sc = x[i].Scales;
            sbyte* q8 = y[i].Qs;
            Vector256<int> sumi = default;
            for (int half = 0; half < 2; half++)
            {
                var bits = Vector256.Load(x[i].Qs + 32 * half).AsUInt16();
                for (int shift = 0; shift < 8; shift += 2, sc += 2, q8 += 32)
                {
                    var q = Vector256.ShiftRightLogical(bits, shift).AsByte() & m3;
                    var p16 = Avx2.MultiplyAddAdjacent(q, Vector256.Load(q8));
                    // Low 16 bytes belong to sub-block sc[0], high 16 to sc[1].
                    var scales = Vector256.Create(Vector128.Create((short)(sc[0] & 0xF)), Vector128.Create((short)(sc[1] & 0xF)));
                    sumi += Avx2.MultiplyAddAdjacent(p16, scales);
                }
            }
            acc = Fma.MultiplyAdd(Vector256.Create(d), Avx.ConvertToVector256Single(sumi), acc);
        }
        return Simd.HSum(acc);
    }

    /// <summary>The portable dot (no AVX2): per super-block the reference's isum and summs as int32 lanes, then
    /// d * float(isum lanes) - dmin * float(summs lanes). The 4-bit scales and mins are small enough to multiply
    /// in int16: |pair sum * scale| &lt;= 2 * 3 * 127 * 15 and |bsum * min| &lt;= 16 * 127 * 15.</summary>
    static float DotV128(byte* row, byte* act, int k)
    {
        var x = (BlockQ2_K*)row;
        var y = (BlockQ8_K*)act;
        var m3 = Vector128.Create((byte)3);
        var m4 = Vector128.Create((byte)0x0F);
        Vector128<float> acc = default, accMin = default;
        for (int i = 0; i < k / QK_K; i++)
        {
            var (mins0, mins1) = Vector128.Widen((Vector128.Load(x[i].Scales).AsUInt16() >> 4).AsByte() & m4);
            var minSums = V128Dot.AddPairs(Vector128.Load(y[i].BSums) * mins0.AsInt16())
                        + V128Dot.AddPairs(Vector128.Load(y[i].BSums + 8) * mins1.AsInt16());

            byte* sc = x[i].Scales;
            sbyte* q8 = y[i].Qs;
            Vector128<int> sumi = default;
            for (int half = 0; half < 2; half++)
            {
                var b0 = Vector128.Load(x[i].Qs + 32 * half).AsUInt16();
                var b1 = Vector128.Load(x[i].Qs + 32 * half + 16).AsUInt16();
                for (int shift = 0; shift < 8; shift += 2, sc += 2, q8 += 32, b0 >>= 2, b1 >>= 2)
                {
                    // Bytes 0..15 of the group belong to sub-block sc[0], 16..31 to sc[1].
                    var p = V128Dot.PairSumsUnsigned(b0.AsByte() & m3, q8) * Vector128.Create((short)(sc[0] & 0xF))
                          + V128Dot.PairSumsUnsigned(b1.AsByte() & m3, q8 + 16) * Vector128.Create((short)(sc[1] & 0xF));
                    sumi += V128Dot.AddPairs(p);
                }
            }
            float d = y[i].D * Fp16.ToSingle(x[i].D);
            float dmin = y[i].D * Fp16.ToSingle(x[i].DMin);
            acc += Vector128.Create(d) * Vector128.ConvertToSingle(sumi);
            accMin += Vector128.Create(dmin) * Vector128.ConvertToSingle(minSums);
        }
        return Vector128.Sum(acc) - Vector128.Sum(accMin);
    }
}
