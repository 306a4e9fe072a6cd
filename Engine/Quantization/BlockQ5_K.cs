using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Formats;
using static Engine.Quantization.QuantMath;

namespace Engine.Quantization;

/// <summary>block_q5_K: Q4_K plus a fifth bit per quant; value = d * scale * q - dmin * min with q in [0, 31].
/// For the 64 elements of pair p (sub-blocks 2p and 2p+1), the fifth bit of element l (l &lt; 32) is bit 2p of
/// qh[l], and of element 32 + l bit 2p + 1.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ5_K
{
    public Half D;
    public Half DMin;
    public fixed byte Scales[12];
    public fixed byte Qh[QK_K / 8];
    public fixed byte Qs[QK_K / 2];
}

internal sealed unsafe class Q5_KFormat : RowFormat, IWeightQuantizer
{
    public static readonly Q5_KFormat Instance = new();
    Q5_KFormat() : base(GgmlType.Q5_K, GgmlType.Q8_K) { }

    /// <summary>quantize_row_q5_K_ref.</summary>
    public void QuantizeRowReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        if (src.Length % QK_K != 0 || dst.Length < RowBytes(src.Length)) throw new ArgumentException("bad row length");
        byte* L = stackalloc byte[QK_K];
        byte* Laux = stackalloc byte[32];
        float* weights = stackalloc float[32];
        float* mins = stackalloc float[QK_K / 32];
        float* scales = stackalloc float[QK_K / 32];
        fixed (float* xp = src) fixed (byte* yp = dst)
        {
            float* x = xp;
            var y = (BlockQ5_K*)yp;
            for (int i = 0; i < src.Length / QK_K; i++, x += QK_K)
            {
                float maxScale = 0, maxMin = 0;
                for (int j = 0; j < QK_K / 32; j++)
                {
                    float sumX2 = 0;
                    for (int l = 0; l < 32; l++) sumX2 += x[32 * j + l] * x[32 * j + l];
                    float avX = MathF.Sqrt(sumX2 / 32);
                    for (int l = 0; l < 32; l++) weights[l] = avX + MathF.Abs(x[32 * j + l]);
                    scales[j] = MakeQkx2Quants(32, 31, x + 32 * j, weights, L + 32 * j, out mins[j], Laux, -0.5f, 0.1f, 15, false);
                    if (scales[j] > maxScale) maxScale = scales[j];
                    if (mins[j] > maxMin) maxMin = mins[j];
                }
                float invScale = maxScale > 0 ? 63f / maxScale : 0f;
                float invMin = maxMin > 0 ? 63f / maxMin : 0f;
                y[i] = default;
                for (int j = 0; j < QK_K / 32; j++)
                {
                    byte ls = Math.Min((byte)63, (byte)NearestInt(invScale * scales[j]));
                    byte lm = Math.Min((byte)63, (byte)NearestInt(invMin * mins[j]));
                    if (j < 4)
                    {
                        y[i].Scales[j] = ls;
                        y[i].Scales[j + 4] = lm;
                    }
                    else
                    {
                        y[i].Scales[j + 4] = (byte)((ls & 0xF) | ((lm & 0xF) << 4));
                        y[i].Scales[j - 4] |= (byte)((ls >> 4) << 6);
                        y[i].Scales[j] |= (byte)((lm >> 4) << 6);
                    }
                }
                y[i].D = (Half)(maxScale / 63f);
                y[i].DMin = (Half)(maxMin / 63f);
                for (int j = 0; j < QK_K / 32; j++)
                {
                    ScaleMinK4(j, y[i].Scales, out byte sc, out byte m);
                    float d = Fp16.ToSingle(y[i].D) * sc;
                    if (d == 0) continue;
                    float dm = Fp16.ToSingle(y[i].DMin) * m;
                    for (int ii = 0; ii < 32; ii++)
                        L[32 * j + ii] = (byte)Math.Max(0, Math.Min(31, NearestInt((x[32 * j + ii] + dm) / d)));
                }
                PackLevels(L, &y[i]);
            }
        }
    }

    /// <summary>quantize_row_q5_K_impl: as Q4_K's (<see cref="Q4_KFormat.QuantizeRowWeighted"/>) with 32 levels.</summary>
    public void QuantizeRowWeighted(ReadOnlySpan<float> src, Span<byte> dst, ReadOnlySpan<float> importance)
    {
        WeightedRow.Check(src, dst, importance, QK_K, RowBytes(src.Length));
        byte* L = stackalloc byte[QK_K];
        byte* Laux = stackalloc byte[32];
        byte* Ls = stackalloc byte[QK_K / 32];
        byte* Lm = stackalloc byte[QK_K / 32];
        float* weights = stackalloc float[32];
        float* sw = stackalloc float[QK_K / 32];
        float* mins = stackalloc float[QK_K / 32];
        float* scales = stackalloc float[QK_K / 32];
        fixed (float* xp = src) fixed (float* qwp = importance) fixed (byte* yp = dst)
        {
            float* x = xp;
            var y = (BlockQ5_K*)yp;
            for (int i = 0; i < src.Length / QK_K; i++, x += QK_K)
            {
                float sumX2 = 0;
                for (int l = 0; l < QK_K; l++) sumX2 += x[l] * x[l];
                float sigma2 = 2 * sumX2 / QK_K;
                for (int j = 0; j < QK_K / 32; j++)
                {
                    WeightedRow.Weights(x + 32 * j, qwp + QK_K * i + 32 * j, sigma2, weights, 32);
                    float sumw = 0;
                    for (int l = 0; l < 32; l++) sumw += weights[l];
                    sw[j] = sumw;
                    scales[j] = MakeQkx3Quants(32, 31, x + 32 * j, weights, L + 32 * j, out mins[j], Laux, -0.9f, 0.05f, 36, false);
                }
                float dBlock = MakeQpQuants(QK_K / 32, 63, scales, Ls, sw);
                float mBlock = MakeQpQuants(QK_K / 32, 63, mins, Lm, sw);
                y[i] = default;
                for (int j = 0; j < QK_K / 32; j++)
                {
                    byte ls = Math.Min((byte)63, Ls[j]), lm = Math.Min((byte)63, Lm[j]);
                    if (j < 4)
                    {
                        y[i].Scales[j] = ls;
                        y[i].Scales[j + 4] = lm;
                    }
                    else
                    {
                        y[i].Scales[j + 4] = (byte)((ls & 0xF) | ((lm & 0xF) << 4));
                        y[i].Scales[j - 4] |= (byte)((ls >> 4) << 6);
                        y[i].Scales[j] |= (byte)((lm >> 4) << 6);
                    }
                }
                y[i].D = (Half)dBlock;
                y[i].DMin = (Half)mBlock;
                for (int j = 0; j < QK_K / 32; j++)
                {
                    ScaleMinK4(j, y[i].Scales, out byte sc, out byte m);
                    float d = Fp16.ToSingle(y[i].D) * sc;
                    if (d == 0) continue;
                    float dm = Fp16.ToSingle(y[i].DMin) * m;
                    for (int ii = 0; ii < 32; ii++)
                        L[32 * j + ii] = (byte)Math.Max(0, Math.Min(31, NearestInt((x[32 * j + ii] + dm) / d)));
                }
                PackLevels(L, &y[i]);
            }
        }
    }

    /// <summary>Stores 256 levels in [0, 31]: the low 4 bits in qs, the fifth in qh (qh must be zero).</summary>
    static void PackLevels(byte* L, BlockQ5_K* y)
    {
        byte* qh = y->Qh;
        byte* ql = y->Qs;
        byte m1 = 1, m2 = 2;
        for (int n = 0; n < QK_K; n += 64, ql += 32, m1 <<= 2, m2 <<= 2)
            for (int j = 0; j < 32; j++)
            {
                int l1 = L[n + j];
                if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                int l2 = L[n + j + 32];
                if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                ql[j] = (byte)(l1 | (l2 << 4));
            }
    }

    private protected override void QuantizeActivationsCore(float* x, byte* dst, int k) => BlockQ8_K.Quantize(x, (BlockQ8_K*)dst, k);

    private protected override void DequantizeReferenceCore(byte* row, float* y, int k)
    {
        var x = (BlockQ5_K*)row;
        for (int i = 0; i < k / QK_K; i++)
        {
            byte* ql = x[i].Qs;
            byte* qh = x[i].Qh;
            float d = Fp16.ToSingle(x[i].D), min = Fp16.ToSingle(x[i].DMin);
            byte u1 = 1, u2 = 2;
            for (int j = 0, s = 0; j < QK_K; j += 64, ql += 32, s += 2, u1 <<= 2, u2 <<= 2)
            {
                ScaleMinK4(s, x[i].Scales, out byte sc, out byte m);
                float d1 = d * sc, m1 = min * m;
                ScaleMinK4(s + 1, x[i].Scales, out sc, out m);
                float d2 = d * sc, m2 = min * m;
                for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0xF) + ((qh[l] & u1) != 0 ? 16 : 0)) - m1;
                for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + ((qh[l] & u2) != 0 ? 16 : 0)) - m2;
            }
        }
    }

    /// <summary>The 64 unsigned 5-bit quants of sub-block pair p.</summary>
    static void Unpack(BlockQ5_K* b, int p, out Vector256<byte> lo, out Vector256<byte> hi)
    {
        var mask = Vector256.Create((byte)0x0F);
        var bit = Vector256.Create((byte)0x10);
        var raw = Vector256.Load(b->Qs + 32 * p);
        var h = Vector256.Load(b->Qh).AsUInt16();
        // Move bits 2p and 2p+1 of every qh byte to bit 4.
        lo = (raw & mask) | (Vector256.ShiftLeft(Vector256.ShiftRightLogical(h, 2 * p), 4).AsByte() & bit);
        hi = (Vector256.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & mask)
           | (Vector256.ShiftLeft(Vector256.ShiftRightLogical(h, 2 * p + 1), 4).AsByte() & bit);
    }

    private protected override void DequantizeCore(byte* row, float* y, int k)
    {
        if (!Avx2.IsSupported) { DequantizeReferenceCore(row, y, k); return; }
        var x = (BlockQ5_K*)row;
        for (int i = 0; i < k / QK_K; i++)
        {
            float d = Fp16.ToSingle(x[i].D), min = Fp16.ToSingle(x[i].DMin);
            for (int p = 0; p < 4; p++, y += 64)
            {
                ScaleMinK4(2 * p, x[i].Scales, out byte sc, out byte m);
                float d1 = d * sc, m1 = min * m;
                ScaleMinK4(2 * p + 1, x[i].Scales, out sc, out m);
                float d2 = d * sc, m2 = min * m;
                Unpack(x + i, p, out var lo, out var hi);
                Q4_KFormat.StoreAffine(lo, d1, m1, y);
                Q4_KFormat.StoreAffine(hi, d2, m2, y + 32);
            }
        }
    }

    /// <summary>ggml_vec_dot_q5_K_q8_K_generic, including its 8 float lane sums.</summary>
    private protected override float DotReferenceCore(byte* row, byte* act, int k)
    {
        var x = (BlockQ5_K*)row;
        var y = (BlockQ8_K*)act;
        sbyte* aux8 = stackalloc sbyte[QK_K];
        float* sums = stackalloc float[8];
        int* aux32 = stackalloc int[8];
        for (int l = 0; l < 8; l++) sums[l] = 0;
        float sumf = 0;
        for (int i = 0; i < k / QK_K; i++)
        {
            byte* q4 = x[i].Qs;
            byte* hm = x[i].Qh;
            sbyte* q8 = y[i].Qs;
            for (int l = 0; l < 8; l++) aux32[l] = 0;
            sbyte* a = aux8;
            byte m = 1;
            for (int j = 0; j < QK_K / 64; j++, q4 += 32)
            {
                for (int l = 0; l < 32; l++) *a++ = (sbyte)((q4[l] & 0xF) + ((hm[l] & m) != 0 ? 16 : 0));
                m <<= 1;
                for (int l = 0; l < 32; l++) *a++ = (sbyte)((q4[l] >> 4) + ((hm[l] & m) != 0 ? 16 : 0));
                m <<= 1;
            }
            BlockQ4_K.UnpackScales(x[i].Scales, out ulong scalesBits, out ulong minsBits);
            byte* scales = (byte*)&scalesBits;
            byte* mins = (byte*)&minsBits;
            int sumi = 0;
            for (int j = 0; j < QK_K / 16; j++) sumi += y[i].BSums[j] * mins[j / 2];
            a = aux8;
            for (int j = 0; j < QK_K / 32; j++)
            {
                int scale = scales[j];
                for (int g = 0; g < 4; g++, q8 += 8, a += 8)
                    for (int l = 0; l < 8; l++) aux32[l] += scale * (short)(q8[l] * a[l]);
            }
            float d = Fp16.ToSingle(x[i].D) * y[i].D;
            for (int l = 0; l < 8; l++) sums[l] += d * aux32[l];
            float dmin = Fp16.ToSingle(x[i].DMin) * y[i].D;
            sumf -= dmin * sumi;
        }
        for (int l = 0; l < 8; l++) sumf += sums[l];
        return sumf;
    }

    private protected override float DotCore(byte* row, byte* act, int k)
    {
        if (!Simd.Avx2Fma) return Simd.V128 ? DotV128(row, act, k) : DotReferenceCore(row, act, k);
        var x = (BlockQ5_K*)row;
        var y = (BlockQ8_K*)act;
        Vector256<float> acc = default, accMin = default;
        for (int i = 0; i < k / QK_K; i++)
        {
            float d = Fp16.ToSingle(x[i].D) * y[i].D;
            float dmin = -Fp16.ToSingle(x[i].DMin) * y[i].D;
            BlockQ4_K.UnpackScales(x[i].Scales, out ulong scales, out ulong mins);
            var m8 = Vector128.CreateScalar(mins).AsByte();
            var mins16 = Avx2.ConvertToVector256Int16(Sse2.UnpackLow(m8, m8));
            accMin = Fma.MultiplyAdd(Vector256.Create(dmin), Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(y[i].BSums), mins16)), accMin);

            byte* sc = (byte*)&scales;
            Vector256<int> sumi = default;
            for (int p = 0; p < 4; p++)
            {
                Unpack(x + i, p, out var lo, out var hi);
                var p16lo = Avx2.MultiplyAddAdjacent(lo, Vector256.Load(y[i].Qs + 64 * p));
                var p16hi = Avx2.MultiplyAddAdjacent(hi, Vector256.Load(y[i].Qs + 64 * p + 32));
                sumi += Avx2.MultiplyAddAdjacent(p16lo, Vector256.Create((short)sc[2 * p]))
                      + Avx2.MultiplyAddAdjacent(p16hi, Vector256.Create((short)sc[2 * p + 1]));
            }
            acc = Fma.MultiplyAdd(Vector256.Create(d), Avx.ConvertToVector256Single(sumi), acc);
        }
        return Simd.HSum(acc) + Simd.HSum(accMin);
    }

    /// <summary>The portable dot (no AVX2), as Q4_K's: per super-block the reference's two integers,
    /// sum(scale * q5 . q8) and sum(min * bsums), as int32 lanes, then d * float(lanes) and dmin * float(lanes).</summary>
    static float DotV128(byte* row, byte* act, int k)
    {
        var x = (BlockQ5_K*)row;
        var y = (BlockQ8_K*)act;
        var bit = Vector128.Create((byte)0x10);
        Vector128<float> acc = default, accMin = default;
        for (int i = 0; i < k / QK_K; i++)
        {
            BlockQ4_K.UnpackScales(x[i].Scales, out ulong scales, out ulong mins);
            var (mins0, mins1) = Vector128.Widen(Vector128.WidenLower(Vector128.CreateScalar(mins).AsByte()));
            var minSums = V128Dot.AddPairs(Vector128.Load(y[i].BSums)) * mins0.AsInt32()
                        + V128Dot.AddPairs(Vector128.Load(y[i].BSums + 8)) * mins1.AsInt32();

            // The fifth bits of elements l (qh[l], l < 32) of sub-block j are bit j: shifted down one per sub-block,
            // then bit 0 of every byte moved to bit 4. |4 products| <= 4 * 31 * 128 fits int16.
            var h0 = Vector128.Load(x[i].Qh).AsUInt16();
            var h1 = Vector128.Load(x[i].Qh + 16).AsUInt16();
            Vector128<int> sumi = default;
            byte* q5 = x[i].Qs;
            sbyte* q8 = y[i].Qs;
            for (int p = 0; p < 4; p++, q5 += 32, q8 += 64, scales >>= 16)
            {
                V128Dot.Nibbles(q5, out var lo0, out var hi0);
                V128Dot.Nibbles(q5 + 16, out var lo1, out var hi1);
                var lo = V128Dot.PairSumsUnsigned(lo0 | ((h0 << 4).AsByte() & bit), q8)
                       + V128Dot.PairSumsUnsigned(lo1 | ((h1 << 4).AsByte() & bit), q8 + 16);
                h0 >>= 1;
                h1 >>= 1;
                var hi = V128Dot.PairSumsUnsigned(hi0 | ((h0 << 4).AsByte() & bit), q8 + 32)
                       + V128Dot.PairSumsUnsigned(hi1 | ((h1 << 4).AsByte() & bit), q8 + 48);
                h0 >>= 1;
                h1 >>= 1;
                sumi += V128Dot.AddPairs(lo) * Vector128.Create((int)(scales & 0xFF))
                      + V128Dot.AddPairs(hi) * Vector128.Create((int)((scales >> 8) & 0xFF));
            }
            float d = Fp16.ToSingle(x[i].D) * y[i].D;
            float dmin = Fp16.ToSingle(x[i].DMin) * y[i].D;
            acc += Vector128.Create(d) * Vector128.ConvertToSingle(sumi);
            accMin += Vector128.Create(dmin) * Vector128.ConvertToSingle(minSums);
        }
        return Vector128.Sum(acc) - Vector128.Sum(accMin);
    }
}
