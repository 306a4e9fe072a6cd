using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Formats;
using static Engine.Quantization.QuantMath;

namespace Engine.Quantization;

/// <summary>block_q4_K: a 256-element super-block of 8 sub-blocks of 32. Each sub-block has a 6-bit scale and
/// a 6-bit min (packed into 12 bytes); value = d * scale * q - dmin * min with q in [0, 15]. Each 32 bytes of
/// qs hold two sub-blocks: the low nibbles one, the high nibbles the next.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ4_K
{
    public Half D;
    public Half DMin;
    public fixed byte Scales[12];
    public fixed byte Qs[QK_K / 2];

    /// <summary>Unpacks the 12 scale bytes into 8 scales and 8 mins (the utmp shuffle of ggml's kernels).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void UnpackScales(byte* packed, out ulong scales, out ulong mins)
    {
        const uint kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
        uint u0 = Unsafe.ReadUnaligned<uint>(packed);
        uint u1 = Unsafe.ReadUnaligned<uint>(packed + 4);
        uint u2 = Unsafe.ReadUnaligned<uint>(packed + 8);
        uint s0 = u0 & kmask1;
        uint s1 = (u2 & kmask2) | (((u0 >> 6) & kmask3) << 4);
        uint m0 = u1 & kmask1;
        uint m1 = ((u2 >> 4) & kmask2) | (((u1 >> 6) & kmask3) << 4);
        scales = s0 | ((ulong)s1 << 32);
        mins = m0 | ((ulong)m1 << 32);
    }

    /// <summary><see cref="UnpackScales"/> in one register: bytes 0-7 the scales, 8-15 the mins. Reads 16 bytes at
    /// packed (the 12 scale bytes and the first 4 quant bytes, which are masked away).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<byte> UnpackScalesVector(byte* packed)
    {
        if (!Avx2.IsSupported)
        {
            UnpackScales(packed, out ulong scales, out ulong mins);
            return Vector128.Create(scales, mins).AsByte();
        }
        var u = Vector128.Load((uint*)packed); // u0 u1 u2 (u3)
        // Lanes s0 = u0 & 3f, s1 = (u2 & 0f) | ((u0 >> 6) & 03) << 4, m0 = u1 & 3f, m1 = ((u2 >> 4) & 0f) | ((u1 >> 6) & 03) << 4.
        var low = Avx2.ShiftRightLogicalVariable(Sse2.Shuffle(u, 0b10_01_10_00), Vector128.Create(0u, 0u, 0u, 4u))
                & Vector128.Create(0x3f3f3f3fu, 0x0f0f0f0fu, 0x3f3f3f3fu, 0x0f0f0f0fu);
        var high = ((Sse2.Shuffle(u, 0b01_00_00_00) >> 6) & Vector128.Create(0u, 0x03030303u, 0u, 0x03030303u)) << 4;
        return (low | high).AsByte();
    }
}

internal sealed unsafe class Q4_KFormat : RowFormat, IWeightQuantizer
{
    public static readonly Q4_KFormat Instance = new();
    Q4_KFormat() : base(GgmlType.Q4_K, GgmlType.Q8_K) { }

    /// <summary>quantize_row_q4_K_ref.</summary>
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
            var y = (BlockQ4_K*)yp;
            for (int i = 0; i < src.Length / QK_K; i++, x += QK_K)
            {
                float maxScale = 0, maxMin = 0;
                for (int j = 0; j < QK_K / 32; j++)
                {
                    float sumX2 = 0;
                    for (int l = 0; l < 32; l++) sumX2 += x[32 * j + l] * x[32 * j + l];
                    float avX = MathF.Sqrt(sumX2 / 32);
                    for (int l = 0; l < 32; l++) weights[l] = avX + MathF.Abs(x[32 * j + l]);
                    scales[j] = MakeQkx2Quants(32, 15, x + 32 * j, weights, L + 32 * j, out mins[j], Laux, -1f, 0.1f, 20, false);
                    if (scales[j] > maxScale) maxScale = scales[j];
                    if (mins[j] > maxMin) maxMin = mins[j];
                }
                float invScale = maxScale > 0 ? 63f / maxScale : 0f;
                float invMin = maxMin > 0 ? 63f / maxMin : 0f;
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
                        L[32 * j + ii] = (byte)Math.Max(0, Math.Min(15, NearestInt((x[32 * j + ii] + dm) / d)));
                }
                byte* q = y[i].Qs;
                for (int j = 0; j < QK_K; j += 64, q += 32)
                    for (int l = 0; l < 32; l++) q[l] = (byte)(L[j + l] | (L[j + l + 32] << 4));
            }
        }
    }

    /// <summary>quantize_row_q4_K_impl: each sub-block of 32 by make_qkx3_quants weighted by
    /// importance * sqrt(sigma2 + x^2) (sigma2 twice the super-block's mean square), the 8 scales and the 8 mins by
    /// make_qp_quants weighted by each sub-block's total weight, then every value requantized with the stored scales.</summary>
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
            var y = (BlockQ4_K*)yp;
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
                    scales[j] = MakeQkx3Quants(32, 15, x + 32 * j, weights, L + 32 * j, out mins[j], Laux, -0.9f, 0.05f, 36, false);
                }
                float dBlock = MakeQpQuants(QK_K / 32, 63, scales, Ls, sw);
                float mBlock = MakeQpQuants(QK_K / 32, 63, mins, Lm, sw);
                for (int j = 0; j < QK_K / 32; j++)
                {
                    byte ls = Ls[j], lm = Lm[j];
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
                        L[32 * j + ii] = (byte)Math.Max(0, Math.Min(15, NearestInt((x[32 * j + ii] + dm) / d)));
                }
                byte* q = y[i].Qs;
                for (int j = 0; j < QK_K; j += 64, q += 32)
                    for (int l = 0; l < 32; l++) q[l] = (byte)(L[j + l] | (L[j + l + 32] << 4));
            }
        }
    }

    private protected override void QuantizeActivationsCore(float* x, byte* dst, int k) => BlockQ8_K.Quantize(x, (BlockQ8_K*)dst, k);

    private protected override void DequantizeReferenceCore(byte* row, float* y, int k)
    {
        var x = (BlockQ4_K*)row;
        for (int i = 0; i < k / QK_K; i++)
        {
            byte* q = x[i].Qs;
            float d = Fp16.ToSingle(x[i].D), min = Fp16.ToSingle(x[i].DMin);
            for (int j = 0, s = 0; j < QK_K; j += 64, q += 32, s += 2)
            {
                ScaleMinK4(s, x[i].Scales, out byte sc, out byte m);
                float d1 = d * sc, m1 = min * m;
                ScaleMinK4(s + 1, x[i].Scales, out sc, out m);
                float d2 = d * sc, m2 = min * m;
                for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - m1;
                for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
            }
        }
    }

    private protected override void DequantizeCore(byte* row, float* y, int k)
    {
        if (!Avx2.IsSupported) { DequantizeReferenceCore(row, y, k); return; }
        var x = (BlockQ4_K*)row;
        for (int i = 0; i < k / QK_K; i++)
        {
            float d = Fp16.ToSingle(x[i].D), min = Fp16.ToSingle(x[i].DMin);
            for (int s = 0; s < 8; s += 2, y += 64)
            {
                ScaleMinK4(s, x[i].Scales, out byte sc, out byte m);
                float d1 = d * sc, m1 = min * m;
                ScaleMinK4(s + 1, x[i].Scales, out sc, out m);
                float d2 = d * sc, m2 = min * m;
                var raw = Vector256.Load(x[i].Qs + 16 * s);
                var lo = raw & Vector256.Create((byte)0x0F);
                var hi = Vector256.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & Vector256.Create((byte)0x0F);
                StoreAffine(lo, d1, m1, y);
                StoreAffine(hi, d2, m2, y + 32);
            }
        }
    }

    /// <summary>dst[i] = d * q[i] - m for 32 unsigned bytes, multiply then subtract (no FMA) to match the reference.</summary>
    internal static void StoreAffine(Vector256<byte> q, float d, float m, float* dst)
    {
        var dv = Vector256.Create(d);
        var mv = Vector256.Create(m);
        var (s0, s1) = Vector256.Widen(q);
        var (i0, i1) = Vector256.Widen(s0);
        var (i2, i3) = Vector256.Widen(s1);
        (Vector256.ConvertToSingle(i0.AsInt32()) * dv - mv).Store(dst);
        (Vector256.ConvertToSingle(i1.AsInt32()) * dv - mv).Store(dst + 8);
        (Vector256.ConvertToSingle(i2.AsInt32()) * dv - mv).Store(dst + 16);
        (Vector256.ConvertToSingle(i3.AsInt32()) * dv - mv).Store(dst + 24);
    }

    /// <summary>ggml_vec_dot_q4_K_q8_K_generic, including its 8 float lane sums.</summary>
    private protected override float DotReferenceCore(byte* row, byte* act, int k)
    {
        var x = (BlockQ4_K*)row;
        var y = (BlockQ8_K*)act;
        sbyte* aux8 = stackalloc sbyte[QK_K];
        float* sums = stackalloc float[8];
        int* aux32 = stackalloc int[8];
        for (int l = 0; l < 8; l++) sums[l] = 0;
        float sumf = 0;
        for (int i = 0; i < k / QK_K; i++)
        {
            byte* q4 = x[i].Qs;
            sbyte* q8 = y[i].Qs;
            for (int l = 0; l < 8; l++) aux32[l] = 0;
            sbyte* a = aux8;
            for (int j = 0; j < QK_K / 64; j++, q4 += 32)
            {
                for (int l = 0; l < 32; l++) *a++ = (sbyte)(q4[l] & 0xF);
                for (int l = 0; l < 32; l++) *a++ = (sbyte)(q4[l] >> 4);
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

    /// <summary>Prompt form: each super-block's nibbles and scales are unpacked once for four tokens; every
    /// (row, token) result has the bits of <see cref="DotCore"/>.</summary>
    internal override void MatMulCore(byte* weights, long rowBytes, int k, byte* acts, int actStride, int tokens,
        float* y, int yStride, int rowStart, int rowEnd)
    {
        if (Simd.Avx2Fma) MatMulInGroupsOfFour(weights, rowBytes, k, acts, actStride, tokens, y, yStride, rowStart, rowEnd, &Dot4);
        else base.MatMulCore(weights, rowBytes, k, acts, actStride, tokens, y, yStride, rowStart, rowEnd);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot4(byte* row, byte* act, int actStride, int k, float* y, int yStride)
    {
        var mask = Vector256.Create((byte)0x0F);
        byte* a0 = act, a1 = act + actStride, a2 = act + 2 * actStride, a3 = act + 3 * actStride;
        Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        Vector256<float> min0 = default, min1 = default, min2 = default, min3 = default;
        byte* end = row + (long)(k / QK_K) * sizeof(BlockQ4_K);
        for (byte* block = row; block < end; block += sizeof(BlockQ4_K), a0 += sizeof(BlockQ8_K), a1 += sizeof(BlockQ8_K), a2 += sizeof(BlockQ8_K), a3 += sizeof(BlockQ8_K))
        {
            // Everything that depends only on the weights is done once for the four tokens.
            var dAndMin = Fp16.ToSingle(Vector128.WidenLower(Vector128.CreateScalar(*(uint*)block).AsUInt16()));
            float dx = dAndMin.ToScalar(), dminx = dAndMin.GetElement(1);
            var scalesAndMins = BlockQ4_K.UnpackScalesVector(block + 4);
            var mins16 = Avx2.ConvertToVector256Int16(Sse2.UnpackHigh(scalesAndMins, scalesAndMins));
            min0 = MinTerm(mins16, dminx, (BlockQ8_K*)a0, min0);
            min1 = MinTerm(mins16, dminx, (BlockQ8_K*)a1, min1);
            min2 = MinTerm(mins16, dminx, (BlockQ8_K*)a2, min2);
            min3 = MinTerm(mins16, dminx, (BlockQ8_K*)a3, min3);

            var scales = Vector256.Create(scalesAndMins, scalesAndMins);
            Vector256<int> s0 = default, s1 = default, s2 = default, s3 = default;
            for (int j = 0; j < 4; j++)
            {
                var raw = Vector256.Load(block + 16 + 32 * j);
                var lo = raw & mask;
                var hi = Vector256.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & mask;
                var scLo = ScaleOf(scales, 2 * j);
                var scHi = ScaleOf(scales, 2 * j + 1);
                int o = 4 + 64 * j;
                s0 += ScaledPairSums(lo, hi, scLo, scHi, (sbyte*)a0 + o);
                s1 += ScaledPairSums(lo, hi, scLo, scHi, (sbyte*)a1 + o);
                s2 += ScaledPairSums(lo, hi, scLo, scHi, (sbyte*)a2 + o);
                s3 += ScaledPairSums(lo, hi, scLo, scHi, (sbyte*)a3 + o);
            }
            acc0 = Fma.MultiplyAdd(Vector256.Create(dx * *(float*)a0), Avx.ConvertToVector256Single(s0), acc0);
            acc1 = Fma.MultiplyAdd(Vector256.Create(dx * *(float*)a1), Avx.ConvertToVector256Single(s1), acc1);
            acc2 = Fma.MultiplyAdd(Vector256.Create(dx * *(float*)a2), Avx.ConvertToVector256Single(s2), acc2);
            acc3 = Fma.MultiplyAdd(Vector256.Create(dx * *(float*)a3), Avx.ConvertToVector256Single(s3), acc3);
        }
        y[0] = Simd.HSum(acc0) + Simd.HSum(min0);
        y[yStride] = Simd.HSum(acc1) + Simd.HSum(min1);
        y[2 * yStride] = Simd.HSum(acc2) + Simd.HSum(min2);
        y[3 * yStride] = Simd.HSum(acc3) + Simd.HSum(min3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> MinTerm(Vector256<short> mins16, float dminx, BlockQ8_K* y, Vector256<float> acc)
        => Fma.MultiplyAdd(Vector256.Create(-dminx * y->D), Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(y->BSums), mins16)), acc);

    /// <summary>Scale byte `subBlock` of the unpacked scales (both 128-bit lanes hold them) in every int16 lane:
    /// a vpshufb whose control (byte j, then 0x80 to zero the high byte) is a constant once inlined.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<short> ScaleOf(Vector256<byte> scales, int subBlock)
        => Avx2.Shuffle(scales, Vector256.Create((ushort)(0x8000 | subBlock)).AsByte()).AsInt16();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> ScaledPairSums(Vector256<byte> lo, Vector256<byte> hi, Vector256<short> scLo, Vector256<short> scHi, sbyte* q)
        => Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(lo, Vector256.Load(q)), scLo)
         + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(hi, Vector256.Load(q + 32)), scHi);

    private protected override float DotCore(byte* row, byte* act, int k)
    {
        if (!Simd.Avx2Fma) return Simd.V128 ? DotV128(row, act, k) : DotReferenceCore(row, act, k);
        var mask = Vector256.Create((byte)0x0F);
        Vector256<float> acc = default, accMin = default;
        byte* block = row;
        byte* end = row + (long)(k / QK_K) * sizeof(BlockQ4_K);
        // Raw pointers, the scales kept in a register and every sub-block pair written out: the loop body is what
        // a decode step executes for every 144 bytes of weights, so its instruction count is the speed limit.
        for (; block < end; block += sizeof(BlockQ4_K), act += sizeof(BlockQ8_K))
        {
            float yd = *(float*)act;
            var dAndMin = Fp16.ToSingle(Vector128.WidenLower(Vector128.CreateScalar(*(uint*)block).AsUInt16()));
            float d = dAndMin.ToScalar() * yd;
            var scalesAndMins = BlockQ4_K.UnpackScalesVector(block + 4);

            // Min term: each min covers two 16-element bsums, so duplicate every min byte and multiply-add pairs.
            var mins16 = Avx2.ConvertToVector256Int16(Sse2.UnpackHigh(scalesAndMins, scalesAndMins));
            accMin = MinTerm(mins16, dAndMin.GetElement(1), (BlockQ8_K*)act, accMin);

            var scales = Vector256.Create(scalesAndMins, scalesAndMins);
            sbyte* q8 = (sbyte*)act + 4;
            byte* q4 = block + 16;
            var sumi = SubBlockPair(q4, q8, scales, 0, mask)
                     + SubBlockPair(q4 + 32, q8 + 64, scales, 2, mask)
                     + SubBlockPair(q4 + 64, q8 + 128, scales, 4, mask)
                     + SubBlockPair(q4 + 96, q8 + 192, scales, 6, mask);
            acc = Fma.MultiplyAdd(Vector256.Create(d), Avx.ConvertToVector256Single(sumi), acc);
        }
        return Simd.HSum(acc) + Simd.HSum(accMin);
    }

    /// <summary>Two sub-blocks (the low and high nibbles of 32 bytes) against their 64 activations, each pair
    /// sum times its sub-block's scale: the integer lanes of ggml's AVX2 q4_K dot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> SubBlockPair(byte* q4, sbyte* q8, Vector256<byte> scales, int subBlock, Vector256<byte> mask)
    {
        var raw = Vector256.Load(q4);
        var lo = raw & mask;
        var hi = Vector256.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & mask;
        return ScaledPairSums(lo, hi, ScaleOf(scales, subBlock), ScaleOf(scales, subBlock + 1), q8);
    }

    /// <summary>The portable dot (no AVX2): per super-block the reference's two integers, sum(scale * q4 . q8) and
    /// sum(min * bsums), as int32 lanes, then d * float(lanes) and dmin * float(lanes) into float accumulators.</summary>
    static float DotV128(byte* row, byte* act, int k)
    {
        var m4 = Vector128.Create((ushort)0x000F);
        Vector128<float> acc = default, accMin = default;
        byte* end = row + (long)(k / QK_K) * sizeof(BlockQ4_K);
        for (byte* block = row; block < end; block += sizeof(BlockQ4_K), act += sizeof(BlockQ8_K))
        {
            var x = (BlockQ4_K*)block;
            var y = (BlockQ8_K*)act;
            BlockQ4_K.UnpackScales(x->Scales, out ulong scales, out ulong mins);

            // Each min covers two 16-element bsums: add the bsum pairs, then one int32 multiply per min.
            var (mins0, mins1) = Vector128.Widen(Vector128.WidenLower(Vector128.CreateScalar(mins).AsByte()));
            var minSums = V128Dot.AddPairs(Vector128.Load(y->BSums)) * mins0.AsInt32()
                        + V128Dot.AddPairs(Vector128.Load(y->BSums + 8)) * mins1.AsInt32();

            // Sub-blocks 2p (low nibbles) and 2p + 1 (high nibbles) of 32 quant bytes; |4 products| <= 4 * 15 * 128 fits int16.
            Vector128<int> sumi = default;
            byte* q4 = x->Qs;
            sbyte* q8 = y->Qs;
            for (int p = 0; p < 4; p++, q4 += 32, q8 += 64, scales >>= 16)
            {
                var a = Vector128.Load((ushort*)q4);
                var b = Vector128.Load((ushort*)(q4 + 16));
                var lo = V128Dot.PairSums((a & m4).AsInt16(), ((a >> 8) & m4).AsInt16(), q8)
                       + V128Dot.PairSums((b & m4).AsInt16(), ((b >> 8) & m4).AsInt16(), q8 + 16);
                var hi = V128Dot.PairSums(((a >> 4) & m4).AsInt16(), (a >> 12).AsInt16(), q8 + 32)
                       + V128Dot.PairSums(((b >> 4) & m4).AsInt16(), (b >> 12).AsInt16(), q8 + 48);
                sumi += V128Dot.AddPairs(lo) * Vector128.Create((int)(scales & 0xFF))
                      + V128Dot.AddPairs(hi) * Vector128.Create((int)((scales >> 8) & 0xFF));
            }
            float d = Fp16.ToSingle(x->D) * y->D;
            float dmin = Fp16.ToSingle(x->DMin) * y->D;
            acc += Vector128.Create(d) * Vector128.ConvertToSingle(sumi);
            accMin += Vector128.Create(dmin) * Vector128.ConvertToSingle(minSums);
        }
        return Vector128.Sum(acc) - Vector128.Sum(accMin);
    }
}
