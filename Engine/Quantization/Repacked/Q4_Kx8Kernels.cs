using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Quantization.Repacked;

/// <summary>
/// Dots of <see cref="BlockQ4_Kx8"/> groups (8 rows) against Q8_K activations. Per row and super-block every
/// kernel forms the same two exact integers, isum = sum over sub-blocks s of scale[s] * (q4 . q8 over s) and
/// imin = sum of min[s] * (the two bsums of s), then acc += float(isum) * (d * yd) and accMin += float(imin) *
/// (dmin * yd), both fused multiply-adds, and the result is acc - accMin: so the AVX2 decode kernel, the AVX2
/// prompt tile and the scalar reference agree to the bit, and a prompt gives the bits decode gives.
///
/// Why it is faster than a row at a time (<see cref="Q4_KFormat"/>): each 32-byte load of quants holds 4 bytes
/// of each of the 8 rows, so one 4-byte activation broadcast serves all 8 rows and the lanes end as the 8 row
/// results (no horizontal sums); eight pmaddubsw products of a sub-block are summed in int16 before a single
/// pmaddwd by the scales (a row kernel pays one pmaddwd per pmaddubsw); the 8 rows' scales and mins are
/// unpacked together, a few vector operations per super-block.
/// int16 cannot overflow: a pmaddubsw lane is at most 2 * 15 * 127 = 3810 (Q8_K quants lie in [-127, 127]),
/// eight of them 30480.
/// </summary>
internal static unsafe class Q4_Kx8Kernels
{
    const int GroupSize = BlockQ4_Kx8.Size;

    /// <summary>y[8g + j] = row 8g + j . activations for groups [groupStart, groupEnd) of a repacked matrix.</summary>
    public static void MatVec(byte* packed, int k, byte* act, float* y, int groupStart, int groupEnd)
    {
        int nb = k / QuantMath.QK_K;
        long groupBytes = (long)nb * GroupSize;
        for (int g = groupStart; g < groupEnd; g++)
            Dot8(packed + g * groupBytes, act, nb, y + 8 * g);
    }

    /// <summary>y[t * yStride + 8g + j] for every token t of the batch (token t's activations at acts + t * actStride)
    /// and the groups [groupStart, groupEnd): four tokens at a time share each group's nibble unpacking.</summary>
    public static void MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd)
    {
        int nb = k / QuantMath.QK_K;
        long groupBytes = (long)nb * GroupSize;
        for (int g = groupStart; g < groupEnd; g++)
        {
            byte* group = packed + g * groupBytes;
            int t = 0;
            if (Simd.Avx2Fma)
                for (; t + 4 <= tokens; t += 4)
                    Dot8x4Avx2(group, acts + (long)t * actStride, actStride, nb, y + (long)t * yStride + 8 * g, yStride);
            for (; t < tokens; t++)
                Dot8(group, acts + (long)t * actStride, nb, y + (long)t * yStride + 8 * g);
        }
    }

    /// <summary>The 8 rows of one group (nb super-blocks) against one token.</summary>
    public static void Dot8(byte* group, byte* act, int nb, float* y)
    {
        if (Simd.Avx2Fma) Dot8Avx2(group, act, nb, y);
        else DotReference(group, act, nb, y);
    }

    /// <summary>The scalar reference: each row on its own, element by element from the group's layout.</summary>
    public static void DotReference(byte* group, byte* act, int nb, float* y)
    {
        for (int j = 0; j < BlockQ4_Kx8.Rows; j++)
        {
            float acc = 0, accMin = 0;
            var g = (BlockQ4_Kx8*)group;
            var a = (BlockQ8_K*)act;
            for (int b = 0; b < nb; b++, g++, a++)
            {
                int isum = 0, imin = 0;
                for (int s = 0; s < 8; s++)
                {
                    int p = s / 2, h = s & 1;
                    int dot = 0;
                    for (int e = 0; e < 32; e++)
                    {
                        byte q = g->Qs[256 * p + 32 * (e / 4) + 4 * j + e % 4];
                        dot += (h == 0 ? q & 0xF : q >> 4) * a->Qs[64 * p + 32 * h + e];
                    }
                    isum += BlockQ4_Kx8.Scale(g, j, s) * dot;
                    imin += BlockQ4_Kx8.Min(g, j, s) * (a->BSums[2 * s] + a->BSums[2 * s + 1]);
                }
                acc = MathF.FusedMultiplyAdd(isum, Fp16.ToSingle(g->D[j]) * a->D, acc);
                accMin = MathF.FusedMultiplyAdd(imin, Fp16.ToSingle(g->DMin[j]) * a->D, accMin);
            }
            y[j] = acc - accMin;
        }
    }

    /// <summary>The decode kernel: one token, 8 rows in the 8 float lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot8Avx2(byte* group, byte* act, int nb, float* y)
    {
        var m4 = Vector256.Create((byte)0x0F);
        Vector256<float> acc = default, accMin = default;
        for (int b = 0; b < nb; b++, group += GroupSize, act += sizeof(BlockQ8_K))
        {
            var g = (BlockQ4_Kx8*)group;
            var a = (BlockQ8_K*)act;
            UnpackScales(g, out var sa, out var sb, out var ma, out var mb);
            byte* q = g->Qs;
            sbyte* q8 = a->Qs;
            var isum = Pair(q, q8, m4, sa, 0) + Pair(q + 256, q8 + 64, m4, sa, 1)
                     + Pair(q + 512, q8 + 128, m4, sb, 0) + Pair(q + 768, q8 + 192, m4, sb, 1);
            var yd = Vector256.Create(a->D);
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(isum), Fp16.Load8(g->D) * yd, acc);
            accMin = Fma.MultiplyAdd(Avx.ConvertToVector256Single(MinSums(ma, mb, a)), Fp16.Load8(g->DMin) * yd, accMin);
        }
        (acc - accMin).Store(y);
    }

    /// <summary>The four 32-byte vectors of 6-bit values (see <see cref="BlockQ4_Kx8"/>): scales of sub-blocks
    /// 0-3 (sa) and 4-7 (sb), mins likewise; row j's four values at bytes 4j .. 4j + 3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void UnpackScales(BlockQ4_Kx8* g, out Vector256<byte> sa, out Vector256<byte> sb, out Vector256<byte> ma, out Vector256<byte> mb)
    {
        var m4 = Vector256.Create((byte)0x0F);
        var top = Vector256.Create((byte)0x30);
        var low0 = Vector256.Load(g->Low);
        var low1 = Vector256.Load(g->Low + 32);
        var high = Vector256.Load(g->High).AsUInt16();
        // 16-bit shifts move bits across bytes, but only into bits the masks clear.
        sa = (low0 & m4) | (Vector256.ShiftLeft(high, 4).AsByte() & top);
        sb = (low1 & m4) | (Vector256.ShiftLeft(high, 2).AsByte() & top);
        ma = (Vector256.ShiftRightLogical(low0.AsUInt16(), 4).AsByte() & m4) | (high.AsByte() & top);
        mb = (Vector256.ShiftRightLogical(low1.AsUInt16(), 4).AsByte() & m4) | (Vector256.ShiftRightLogical(high, 2).AsByte() & top);
    }

    /// <summary>A quant pair (two sub-blocks: the low and high nibbles of 256 bytes) of the 8 rows: each row's
    /// scaled sums in its int32 lane. `scales` is sa or sb; `half` says which pair of it (0: its sub-blocks 0, 1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Pair(byte* q, sbyte* q8, Vector256<byte> m4, Vector256<byte> scales, int half)
    {
        Vector256<short> lo16 = default, hi16 = default;
        for (int i = 0; i < 8; i++)
        {
            var raw = Vector256.Load(q + 32 * i);
            var lo = raw & m4;
            var hi = Vector256.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & m4;
            lo16 += Avx2.MultiplyAddAdjacent(lo, Broadcast4(q8 + 4 * i));
            hi16 += Avx2.MultiplyAddAdjacent(hi, Broadcast4(q8 + 32 + 4 * i));
        }
        return Avx2.MultiplyAddAdjacent(lo16, ScaleOf(scales, 2 * half))
             + Avx2.MultiplyAddAdjacent(hi16, ScaleOf(scales, 2 * half + 1));
    }

    /// <summary>Row j's scale c (byte 4j + c of sa or sb) in both int16 halves of int32 lane j: one vpshufb, whose
    /// control is a constant once inlined (rows 0-3 and 4-7 each in their own 128-bit lane, as vpshufb needs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<short> ScaleOf(Vector256<byte> scales, int c) => Avx2.Shuffle(scales, (c switch
    {
        0 => Vector256.Create(0x80008000u, 0x80048004u, 0x80088008u, 0x800C800Cu, 0x80008000u, 0x80048004u, 0x80088008u, 0x800C800Cu),
        1 => Vector256.Create(0x80018001u, 0x80058005u, 0x80098009u, 0x800D800Du, 0x80018001u, 0x80058005u, 0x80098009u, 0x800D800Du),
        2 => Vector256.Create(0x80028002u, 0x80068006u, 0x800A800Au, 0x800E800Eu, 0x80028002u, 0x80068006u, 0x800A800Au, 0x800E800Eu),
        _ => Vector256.Create(0x80038003u, 0x80078007u, 0x800B800Bu, 0x800F800Fu, 0x80038003u, 0x80078007u, 0x800B800Bu, 0x800F800Fu),
    }).AsByte()).AsInt16();

    /// <summary>The min term of the 8 rows: lane j = sum over sub-blocks s of min[j][s] * bs[s], where bs[s] =
    /// bsums[2s] + bsums[2s + 1]; per quant pair one pmaddwd of (min[j][2p], min[j][2p + 1]) by (bs[2p], bs[2p + 1]).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> MinSums(Vector256<byte> ma, Vector256<byte> mb, BlockQ8_K* a)
    {
        var bs = Ssse3.HorizontalAdd(Vector128.Load(a->BSums), Vector128.Load(a->BSums + 8));
        var pairs = Vector256.Create(bs, bs).AsInt32(); // int32 lane p: (bs[2p], bs[2p + 1]), in both 128-bit lanes
        var evenPairs = Vector256.Create(0x80018000u, 0x80058004u, 0x80098008u, 0x800D800Cu, 0x80018000u, 0x80058004u, 0x80098008u, 0x800D800Cu).AsByte();
        var oddPairs = Vector256.Create(0x80038002u, 0x80078006u, 0x800B800Au, 0x800F800Eu, 0x80038002u, 0x80078006u, 0x800B800Au, 0x800F800Eu).AsByte();
        return Avx2.MultiplyAddAdjacent(Avx2.Shuffle(ma, evenPairs).AsInt16(), Avx2.Shuffle(pairs, 0x00).AsInt16())
             + Avx2.MultiplyAddAdjacent(Avx2.Shuffle(ma, oddPairs).AsInt16(), Avx2.Shuffle(pairs, 0x55).AsInt16())
             + Avx2.MultiplyAddAdjacent(Avx2.Shuffle(mb, evenPairs).AsInt16(), Avx2.Shuffle(pairs, 0xAA).AsInt16())
             + Avx2.MultiplyAddAdjacent(Avx2.Shuffle(mb, oddPairs).AsInt16(), Avx2.Shuffle(pairs, 0xFF).AsInt16());
    }

    /// <summary>4 activation bytes in every int32 lane (vpbroadcastd from memory).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<sbyte> Broadcast4(sbyte* p) => Avx2.BroadcastScalarToVector256((int*)p).AsSByte();

    /// <summary>The prompt tile: 8 rows x 4 tokens (token t's activations at act + t * actStride, its 8 results
    /// at y + t * yStride). Each 32 bytes of quants is unpacked once for the four tokens; per (row, token) the
    /// arithmetic is <see cref="Dot8Avx2"/>'s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot8x4Avx2(byte* group, byte* act, int actStride, int nb, float* y, int yStride)
    {
        var m4 = Vector256.Create((byte)0x0F);
        Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        Vector256<float> min0 = default, min1 = default, min2 = default, min3 = default;
        byte* a0 = act, a1 = act + actStride, a2 = act + 2 * actStride, a3 = act + 3 * actStride;
        for (int b = 0; b < nb; b++, group += GroupSize, a0 += sizeof(BlockQ8_K), a1 += sizeof(BlockQ8_K), a2 += sizeof(BlockQ8_K), a3 += sizeof(BlockQ8_K))
        {
            var g = (BlockQ4_Kx8*)group;
            UnpackScales(g, out var sa, out var sb, out var ma, out var mb);
            Vector256<int> s0 = default, s1 = default, s2 = default, s3 = default;
            // The quants of pair p start at byte 4 + 64p of a BlockQ8_K (after its float d).
            TilePair(g->Qs, 4, a0, a1, a2, a3, m4, sa, 0, ref s0, ref s1, ref s2, ref s3);
            TilePair(g->Qs + 256, 4 + 64, a0, a1, a2, a3, m4, sa, 1, ref s0, ref s1, ref s2, ref s3);
            TilePair(g->Qs + 512, 4 + 128, a0, a1, a2, a3, m4, sb, 0, ref s0, ref s1, ref s2, ref s3);
            TilePair(g->Qs + 768, 4 + 192, a0, a1, a2, a3, m4, sb, 1, ref s0, ref s1, ref s2, ref s3);
            var d = Fp16.Load8(g->D);
            var dmin = Fp16.Load8(g->DMin);
            acc0 = Accumulate(s0, d, (BlockQ8_K*)a0, acc0); min0 = Accumulate(MinSums(ma, mb, (BlockQ8_K*)a0), dmin, (BlockQ8_K*)a0, min0);
            acc1 = Accumulate(s1, d, (BlockQ8_K*)a1, acc1); min1 = Accumulate(MinSums(ma, mb, (BlockQ8_K*)a1), dmin, (BlockQ8_K*)a1, min1);
            acc2 = Accumulate(s2, d, (BlockQ8_K*)a2, acc2); min2 = Accumulate(MinSums(ma, mb, (BlockQ8_K*)a2), dmin, (BlockQ8_K*)a2, min2);
            acc3 = Accumulate(s3, d, (BlockQ8_K*)a3, acc3); min3 = Accumulate(MinSums(ma, mb, (BlockQ8_K*)a3), dmin, (BlockQ8_K*)a3, min3);
        }
        (acc0 - min0).Store(y);
        (acc1 - min1).Store(y + yStride);
        (acc2 - min2).Store(y + 2 * yStride);
        (acc3 - min3).Store(y + 3 * yStride);
    }

    /// <summary>A quant pair of the 8 rows against 4 tokens: its low nibbles, then its high nibbles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void TilePair(byte* q, int o, byte* a0, byte* a1, byte* a2, byte* a3, Vector256<byte> m4, Vector256<byte> scales, int half,
        ref Vector256<int> s0, ref Vector256<int> s1, ref Vector256<int> s2, ref Vector256<int> s3)
    {
        TileHalf(q, a0 + o, a1 + o, a2 + o, a3 + o, m4, ScaleOf(scales, 2 * half), high: false, ref s0, ref s1, ref s2, ref s3);
        TileHalf(q, a0 + o + 32, a1 + o + 32, a2 + o + 32, a3 + o + 32, m4, ScaleOf(scales, 2 * half + 1), high: true, ref s0, ref s1, ref s2, ref s3);
    }

    /// <summary>One sub-block (the low or the high nibbles of a quant pair) of the 8 rows against 4 tokens: the
    /// nibbles are unpacked once, each token's products summed in int16, then scaled into its int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void TileHalf(byte* q, byte* a0, byte* a1, byte* a2, byte* a3, Vector256<byte> m4, Vector256<short> scale, bool high,
        ref Vector256<int> s0, ref Vector256<int> s1, ref Vector256<int> s2, ref Vector256<int> s3)
    {
        Vector256<short> t0 = default, t1 = default, t2 = default, t3 = default;
        for (int i = 0; i < 8; i++)
        {
            var raw = Vector256.Load(q + 32 * i);
            var nib = high ? Vector256.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & m4 : raw & m4;
            t0 += Avx2.MultiplyAddAdjacent(nib, Broadcast4((sbyte*)a0 + 4 * i));
            t1 += Avx2.MultiplyAddAdjacent(nib, Broadcast4((sbyte*)a1 + 4 * i));
            t2 += Avx2.MultiplyAddAdjacent(nib, Broadcast4((sbyte*)a2 + 4 * i));
            t3 += Avx2.MultiplyAddAdjacent(nib, Broadcast4((sbyte*)a3 + 4 * i));
        }
        s0 += Avx2.MultiplyAddAdjacent(t0, scale);
        s1 += Avx2.MultiplyAddAdjacent(t1, scale);
        s2 += Avx2.MultiplyAddAdjacent(t2, scale);
        s3 += Avx2.MultiplyAddAdjacent(t3, scale);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Accumulate(Vector256<int> sums, Vector256<float> scale, BlockQ8_K* a, Vector256<float> acc)
        => Fma.MultiplyAdd(Avx.ConvertToVector256Single(sums), scale * Vector256.Create(a->D), acc);
}
