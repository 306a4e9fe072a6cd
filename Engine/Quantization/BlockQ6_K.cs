using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Formats;
using static Engine.Quantization.QuantMath;

namespace Engine.Quantization;

/// <summary>block_q6_K: 256 6-bit quants in 16 sub-blocks of 16, each with an int8 scale; value =
/// d * scale * (q - 32). Low 4 bits in ql, high 2 bits in qh. Per 128-element half: ql[0..32) holds elements
/// 0..31 (low nibble) and 64..95 (high nibble), ql[32..64) elements 32..63 and 96..127; qh[l] holds the high
/// bits of elements l, l+32, l+64, l+96 in bit pairs 0, 2, 4, 6.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ6_K
{
    public fixed byte Ql[QK_K / 2];
    public fixed byte Qh[QK_K / 4];
    public fixed sbyte Scales[QK_K / 16];
    public Half D;
}

internal sealed unsafe class Q6_KFormat : RowFormat, IWeightQuantizer
{
    public static readonly Q6_KFormat Instance = new();
    Q6_KFormat() : base(GgmlType.Q6_K, GgmlType.Q8_K) { }

    /// <summary>quantize_row_q6_K_ref.</summary>
    public void QuantizeRowReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        if (src.Length % QK_K != 0 || dst.Length < RowBytes(src.Length)) throw new ArgumentException("bad row length");
        fixed (float* xp = src) fixed (byte* yp = dst) Quantize(xp, (BlockQ6_K*)yp, src.Length, null);
    }

    /// <summary>quantize_row_q6_K_impl with weights: the reference's algorithm with each sub-block's make_qx_quants
    /// weighted by the importance itself (not scaled by the values, unlike the other types).</summary>
    public void QuantizeRowWeighted(ReadOnlySpan<float> src, Span<byte> dst, ReadOnlySpan<float> importance)
    {
        WeightedRow.Check(src, dst, importance, QK_K, RowBytes(src.Length));
        fixed (float* xp = src) fixed (float* qwp = importance) fixed (byte* yp = dst) Quantize(xp, (BlockQ6_K*)yp, src.Length, qwp);
    }

    /// <summary>quantize_row_q6_K_impl; importance null gives quantize_row_q6_K_ref.</summary>
    static void Quantize(float* x, BlockQ6_K* y, int k, float* importance)
    {
        sbyte* L = stackalloc sbyte[QK_K];
        float* scales = stackalloc float[QK_K / 16];
        // Eight sub-blocks at a time, transposed for MakeQxQuants8 (the same levels and scales as sixteen scalar calls).
        bool lanes = Vector256.IsHardwareAccelerated;
        float* xT = stackalloc float[QK_K / 2];
        float* qwT = stackalloc float[QK_K / 2];
        for (int i = 0; i < k / QK_K; i++, x += QK_K)
        {
            float* qw = importance == null ? null : importance + QK_K * i;
            if (lanes)
                for (int half = 0; half < 2; half++)
                {
                    Transpose8(x + QK_K / 2 * half, xT);
                    if (qw != null) Transpose8(qw + QK_K / 2 * half, qwT);
                    MakeQxQuants8(16, 32, xT, L + QK_K / 2 * half, scales + 8 * half, qw == null ? null : qwT);
                }
            else
                for (int ib = 0; ib < QK_K / 16; ib++)
                    scales[ib] = MakeQxQuants(16, 32, x + 16 * ib, L + 16 * ib, 1, qw == null ? null : qw + 16 * ib);
            float maxScale = 0, maxAbsScale = 0;
            for (int ib = 0; ib < QK_K / 16; ib++)
            {
                float scale = scales[ib];
                if (MathF.Abs(scale) > maxAbsScale) { maxAbsScale = MathF.Abs(scale); maxScale = scale; }
            }
            if (maxAbsScale < GroupMaxEps)
            {
                y[i] = default;
                continue;
            }
            float iscale = -128f / maxScale;
            y[i].D = (Half)(1 / iscale);
            for (int ib = 0; ib < QK_K / 16; ib++)
                y[i].Scales[ib] = (sbyte)Math.Min(127, NearestInt(iscale * scales[ib]));
            for (int j = 0; j < QK_K / 16; j++)
            {
                float d = Fp16.ToSingle(y[i].D) * y[i].Scales[j];
                if (d == 0) continue;
                for (int ii = 0; ii < 16; ii++)
                {
                    int l = NearestInt(x[16 * j + ii] / d);
                    L[16 * j + ii] = (sbyte)(Math.Max(-32, Math.Min(31, l)) + 32);
                }
            }
            byte* ql = y[i].Ql;
            byte* qh = y[i].Qh;
            for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32)
                for (int l = 0; l < 32; l++)
                {
                    int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                    ql[l] = (byte)(q1 | (q3 << 4));
                    ql[l + 32] = (byte)(q2 | (q4 << 4));
                    qh[l] = (byte)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
                }
        }
    }

    /// <summary>Eight sub-blocks of 16 values, src[16 g + i], to dst[8 i + g].</summary>
    static void Transpose8(float* src, float* dst)
    {
        for (int g = 0; g < 8; g++)
            for (int i = 0; i < 16; i++)
                dst[8 * i + g] = src[16 * g + i];
    }

    private protected override void QuantizeActivationsCore(float* x, byte* dst, int k) => BlockQ8_K.Quantize(x, (BlockQ8_K*)dst, k);

    private protected override void DequantizeReferenceCore(byte* row, float* y, int k)
    {
        var x = (BlockQ6_K*)row;
        for (int i = 0; i < k / QK_K; i++)
        {
            float d = Fp16.ToSingle(x[i].D);
            byte* ql = x[i].Ql;
            byte* qh = x[i].Qh;
            sbyte* sc = x[i].Scales;
            for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8)
                for (int l = 0; l < 32; l++)
                {
                    int s = l / 16;
                    int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    y[l] = d * sc[s] * q1;
                    y[l + 32] = d * sc[s + 2] * q2;
                    y[l + 64] = d * sc[s + 4] * q3;
                    y[l + 96] = d * sc[s + 6] * q4;
                }
        }
    }

    // Lane indices for PermuteVar8x32: [2p + 4h] four times, then [2p + 1 + 4h] four times.
    static readonly Vector256<int> ScaleIndex00 = Vector256.Create(0, 0, 0, 0, 1, 1, 1, 1);
    static readonly Vector256<int> ScaleIndex01 = Vector256.Create(2, 2, 2, 2, 3, 3, 3, 3);
    static readonly Vector256<int> ScaleIndex10 = Vector256.Create(4, 4, 4, 4, 5, 5, 5, 5);
    static readonly Vector256<int> ScaleIndex11 = Vector256.Create(6, 6, 6, 6, 7, 7, 7, 7);

    /// <summary>The scale vectors of the four 32-quant groups of one half (128 quants) of a super-block: group g
    /// needs scale 8h+2g on its first 16 int16 lanes and 8h+2g+1 on the last 16. pairsLow/pairsHigh hold every
    /// scale twice as a 32-bit pair (UnpackLow/High of the 16 scales with themselves: [s0..s3 | s8..s11] and
    /// [s4..s7 | s12..s15]), so one cross-lane permute per group builds it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void GroupScales(Vector256<int> pairsLow, Vector256<int> pairsHigh, int half,
        out Vector256<short> g0, out Vector256<short> g1, out Vector256<short> g2, out Vector256<short> g3)
    {
        var even = half == 0 ? ScaleIndex00 : ScaleIndex10;
        var odd = half == 0 ? ScaleIndex01 : ScaleIndex11;
        g0 = Avx2.PermuteVar8x32(pairsLow, even).AsInt16();
        g1 = Avx2.PermuteVar8x32(pairsLow, odd).AsInt16();
        g2 = Avx2.PermuteVar8x32(pairsHigh, even).AsInt16();
        g3 = Avx2.PermuteVar8x32(pairsHigh, odd).AsInt16();
    }

    /// <summary>The four 32-byte groups of 6-bit quants (unsigned, 0..63) of one 128-element half.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Unpack(byte* ql, byte* qh, out Vector256<byte> q0, out Vector256<byte> q1, out Vector256<byte> q2, out Vector256<byte> q3)
    {
        var m4 = Vector256.Create((byte)0x0F);
        var m2 = Vector256.Create((byte)0x30);
        var h = Vector256.Load(qh).AsUInt16();
        var l1 = Vector256.Load(ql);
        var l2 = Vector256.Load(ql + 32);
        q0 = (l1 & m4) | (Vector256.ShiftLeft(h, 4).AsByte() & m2);
        q1 = (l2 & m4) | (Vector256.ShiftLeft(h, 2).AsByte() & m2);
        q2 = (Vector256.ShiftRightLogical(l1.AsUInt16(), 4).AsByte() & m4) | (h.AsByte() & m2);
        q3 = (Vector256.ShiftRightLogical(l2.AsUInt16(), 4).AsByte() & m4) | (Vector256.ShiftRightLogical(h, 2).AsByte() & m2);
    }

    private protected override void DequantizeCore(byte* row, float* y, int k)
    {
        if (!Avx2.IsSupported) { DequantizeReferenceCore(row, y, k); return; }
        var x = (BlockQ6_K*)row;
        for (int i = 0; i < k / QK_K; i++)
        {
            float d = Fp16.ToSingle(x[i].D);
            for (int half = 0; half < 2; half++, y += 128)
            {
                sbyte* sc = x[i].Scales + 8 * half;
                Unpack(x[i].Ql + 64 * half, x[i].Qh + 32 * half, out var q0, out var q1, out var q2, out var q3);
                Store(q0, d * sc[0], d * sc[1], y);
                Store(q1, d * sc[2], d * sc[3], y + 32);
                Store(q2, d * sc[4], d * sc[5], y + 64);
                Store(q3, d * sc[6], d * sc[7], y + 96);
            }
        }

        static void Store(Vector256<byte> q, float dA, float dB, float* dst)
        {
            var s = (q - Vector256.Create((byte)32)).AsSByte();
            var (s0, s1) = Vector256.Widen(s);
            var (i0, i1) = Vector256.Widen(s0);
            var (i2, i3) = Vector256.Widen(s1);
            (Vector256.ConvertToSingle(i0) * Vector256.Create(dA)).Store(dst);
            (Vector256.ConvertToSingle(i1) * Vector256.Create(dA)).Store(dst + 8);
            (Vector256.ConvertToSingle(i2) * Vector256.Create(dB)).Store(dst + 16);
            (Vector256.ConvertToSingle(i3) * Vector256.Create(dB)).Store(dst + 24);
        }
    }

    /// <summary>ggml_vec_dot_q6_K_q8_K_generic, including its 8 float lane sums.</summary>
    private protected override float DotReferenceCore(byte* row, byte* act, int k)
    {
        var x = (BlockQ6_K*)row;
        var y = (BlockQ8_K*)act;
        sbyte* aux8 = stackalloc sbyte[QK_K];
        float* sums = stackalloc float[8];
        int* aux32 = stackalloc int[8];
        for (int l = 0; l < 8; l++) sums[l] = 0;
        for (int i = 0; i < k / QK_K; i++)
        {
            byte* q4 = x[i].Ql;
            byte* qh = x[i].Qh;
            sbyte* q8 = y[i].Qs;
            for (int l = 0; l < 8; l++) aux32[l] = 0;
            sbyte* a = aux8;
            for (int j = 0; j < QK_K; j += 128, a += 128, q4 += 64, qh += 32)
                for (int l = 0; l < 32; l++)
                {
                    a[l] = (sbyte)(((q4[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                    a[l + 32] = (sbyte)(((q4[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                    a[l + 64] = (sbyte)(((q4[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                    a[l + 96] = (sbyte)(((q4[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
                }
            a = aux8;
            for (int j = 0; j < QK_K / 16; j++)
            {
                int scale = x[i].Scales[j];
                for (int g = 0; g < 2; g++, q8 += 8, a += 8)
                    for (int l = 0; l < 8; l++) aux32[l] += scale * (short)(q8[l] * a[l]);
            }
            float d = Fp16.ToSingle(x[i].D) * y[i].D;
            for (int l = 0; l < 8; l++) sums[l] += d * aux32[l];
        }
        float sumf = 0;
        for (int l = 0; l < 8; l++) sumf += sums[l];
        return sumf;
    }

    /// <summary>Prompt form: each super-block's 6-bit quants are unpacked once for four tokens; every
    /// (row, token) result has the bits of <see cref="DotCore"/> (its integer sums are exact in any order).</summary>
    internal override void MatMulCore(byte* weights, long rowBytes, int k, byte* acts, int actStride, int tokens,
        float* y, int yStride, int rowStart, int rowEnd)
    {
        if (Simd.Avx2Fma) MatMulInGroupsOfFour(weights, rowBytes, k, acts, actStride, tokens, y, yStride, rowStart, rowEnd, &Dot4);
        else base.MatMulCore(weights, rowBytes, k, acts, actStride, tokens, y, yStride, rowStart, rowEnd);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot4(byte* row, byte* act, int actStride, int k, float* y, int yStride)
    {
        var x = (BlockQ6_K*)row;
        int superBlocks = k / QK_K;
        var y0 = (BlockQ8_K*)act; var y1 = (BlockQ8_K*)(act + actStride);
        var y2 = (BlockQ8_K*)(act + 2 * actStride); var y3 = (BlockQ8_K*)(act + 3 * actStride);
        Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        for (int i = 0; i < superBlocks; i++)
        {
            var sc16 = Avx2.ConvertToVector256Int16(Vector128.Load(x[i].Scales));
            var s0 = Offset(sc16, y0 + i); var s1 = Offset(sc16, y1 + i);
            var s2 = Offset(sc16, y2 + i); var s3 = Offset(sc16, y3 + i);
            var pairsLow = Avx2.UnpackLow(sc16, sc16).AsInt32();
            var pairsHigh = Avx2.UnpackHigh(sc16, sc16).AsInt32();
            for (int half = 0; half < 2; half++)
            {
                int o = 128 * half;
                Unpack(x[i].Ql + 64 * half, x[i].Qh + 32 * half, out var q0, out var q1, out var q2, out var q3);
                GroupScales(pairsLow, pairsHigh, half, out var g0, out var g1, out var g2, out var g3);
                s0 += Half(q0, q1, q2, q3, g0, g1, g2, g3, y0[i].Qs + o);
                s1 += Half(q0, q1, q2, q3, g0, g1, g2, g3, y1[i].Qs + o);
                s2 += Half(q0, q1, q2, q3, g0, g1, g2, g3, y2[i].Qs + o);
                s3 += Half(q0, q1, q2, q3, g0, g1, g2, g3, y3[i].Qs + o);
            }
            float dx = Fp16.ToSingle(x[i].D);
            acc0 = Fma.MultiplyAdd(Vector256.Create(dx * y0[i].D), Avx.ConvertToVector256Single(s0), acc0);
            acc1 = Fma.MultiplyAdd(Vector256.Create(dx * y1[i].D), Avx.ConvertToVector256Single(s1), acc1);
            acc2 = Fma.MultiplyAdd(Vector256.Create(dx * y2[i].D), Avx.ConvertToVector256Single(s2), acc2);
            acc3 = Fma.MultiplyAdd(Vector256.Create(dx * y3[i].D), Avx.ConvertToVector256Single(s3), acc3);
        }
        y[0] = Simd.HSum(acc0);
        y[yStride] = Simd.HSum(acc1);
        y[2 * yStride] = Simd.HSum(acc2);
        y[3 * yStride] = Simd.HSum(acc3);

        static Vector256<int> Offset(Vector256<short> sc16, BlockQ8_K* y) => -(Avx2.MultiplyAddAdjacent(Vector256.Load(y->BSums), sc16) << 5);
        static Vector256<int> Half(Vector256<byte> q0, Vector256<byte> q1, Vector256<byte> q2, Vector256<byte> q3,
            Vector256<short> g0, Vector256<short> g1, Vector256<short> g2, Vector256<short> g3, sbyte* q8)
            => Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q0, Vector256.Load(q8)), g0)
             + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q1, Vector256.Load(q8 + 32)), g1)
             + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q2, Vector256.Load(q8 + 64)), g2)
             + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q3, Vector256.Load(q8 + 96)), g3);
    }

    private protected override float DotCore(byte* row, byte* act, int k)
    {
        if (!Simd.Avx2Fma) return Simd.V128 ? DotV128(row, act, k) : DotReferenceCore(row, act, k);
        var x = (BlockQ6_K*)row;
        var y = (BlockQ8_K*)act;
        Vector256<float> acc = default;
        for (int i = 0; i < k / QK_K; i++)
        {
            // The -32 offset is applied once per block through bsums: sum(sc * (q - 32) * q8) = sum(sc * q * q8) - 32 * sum(sc * bsum).
            var sc16 = Avx2.ConvertToVector256Int16(Vector128.Load(x[i].Scales));
            var offset = Avx2.MultiplyAddAdjacent(Vector256.Load(y[i].BSums), sc16);
            Vector256<int> sumi = -(offset << 5);
            var pairsLow = Avx2.UnpackLow(sc16, sc16).AsInt32();
            var pairsHigh = Avx2.UnpackHigh(sc16, sc16).AsInt32();
            for (int half = 0; half < 2; half++)
            {
                sbyte* q8 = y[i].Qs + 128 * half;
                Unpack(x[i].Ql + 64 * half, x[i].Qh + 32 * half, out var q0, out var q1, out var q2, out var q3);
                GroupScales(pairsLow, pairsHigh, half, out var g0, out var g1, out var g2, out var g3);
                sumi += Group(q0, q8, g0) + Group(q1, q8 + 32, g1) + Group(q2, q8 + 64, g2) + Group(q3, q8 + 96, g3);
            }
            acc = Fma.MultiplyAdd(Vector256.Create(Fp16.ToSingle(x[i].D) * y[i].D), Avx.ConvertToVector256Single(sumi), acc);
        }
        return Simd.HSum(acc);

        // 32 quants against 32 activations; the first 16 take one scale, the last 16 the next.
        static Vector256<int> Group(Vector256<byte> q, sbyte* q8, Vector256<short> scales)
            => Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, Vector256.Load(q8)), scales);
    }

    /// <summary>The portable dot (no AVX2): per super-block the reference's integer sum(scale * (q - 32) * q8) as
    /// int32 lanes, with the -32 taken once through bsums as in the AVX2 path, then d * float(lanes).</summary>
    static float DotV128(byte* row, byte* act, int k)
    {
        var x = (BlockQ6_K*)row;
        var y = (BlockQ8_K*)act;
        var m4 = Vector128.Create((byte)0x0F);
        var m2 = Vector128.Create((byte)0x30);
        Vector128<float> acc = default;
        for (int i = 0; i < k / QK_K; i++)
        {
            // 32 * sum(scale * bsum): |scale * bsum| <= 128 * 2032 needs int32 lanes.
            var (sc0, sc1) = Vector128.Widen(Vector128.Load(x[i].Scales));
            var (s0, s1) = Vector128.Widen(sc0);
            var (s2, s3) = Vector128.Widen(sc1);
            var (b0, b1) = Vector128.Widen(Vector128.Load(y[i].BSums));
            var (b2, b3) = Vector128.Widen(Vector128.Load(y[i].BSums + 8));
            var sumi = -((s0 * b0 + s1 * b1 + s2 * b2 + s3 * b3) << 5);

            for (int half = 0; half < 2; half++)
            {
                byte* ql = x[i].Ql + 64 * half;
                byte* qh = x[i].Qh + 32 * half;
                sbyte* q8 = y[i].Qs + 128 * half;
                sbyte* sc = x[i].Scales + 8 * half;
                for (int c = 0; c < 2; c++, ql += 16, qh += 16, q8 += 16, sc++)
                {
                    // Bytes 16c.. of the half's four 32-element groups; unsigned 6-bit quants, |pair sum| <= 2 * 63 * 128.
                    var l1 = Vector128.Load(ql);
                    var l2 = Vector128.Load(ql + 32);
                    var h = Vector128.Load(qh).AsUInt16();
                    var q0 = (l1 & m4) | ((h << 4).AsByte() & m2);
                    var q1 = (l2 & m4) | ((h << 2).AsByte() & m2);
                    var q2 = ((l1.AsUInt16() >> 4).AsByte() & m4) | (h.AsByte() & m2);
                    var q3 = ((l2.AsUInt16() >> 4).AsByte() & m4) | ((h >> 2).AsByte() & m2);
                    sumi += V128Dot.AddPairs(V128Dot.PairSumsUnsigned(q0, q8)) * Vector128.Create((int)sc[0])
                          + V128Dot.AddPairs(V128Dot.PairSumsUnsigned(q1, q8 + 32)) * Vector128.Create((int)sc[2])
                          + V128Dot.AddPairs(V128Dot.PairSumsUnsigned(q2, q8 + 64)) * Vector128.Create((int)sc[4])
                          + V128Dot.AddPairs(V128Dot.PairSumsUnsigned(q3, q8 + 96)) * Vector128.Create((int)sc[6]);
                }
            }
            acc += Vector128.Create(Fp16.ToSingle(x[i].D) * y[i].D) * Vector128.ConvertToSingle(sumi);
        }
        return Vector128.Sum(acc);
    }
}
