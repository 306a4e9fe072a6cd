using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Quantization.Repacked;

/// <summary>
/// Dots of <see cref="BlockQ4_Kx16"/> groups (16 rows) against Q8_K activations: <see cref="Q4_Kx8Kernels"/>'s
/// arithmetic with 512-bit vectors, rows 0-7 in the low 256 bits and 8-15 in the high ones. Per row and super-block
/// the same two exact integers (isum, imin), then acc += float(isum) * (d * yd) and accMin += float(imin) *
/// (dmin * yd) as fused multiply-adds, result acc - accMin: the bits of the 8-row layout and of
/// <see cref="DotReference"/>, in the decode kernel and the prompt tile alike.
/// </summary>
internal static unsafe class Q4_Kx16Kernels
{
    const int GroupSize = BlockQ4_Kx16.Size;

    /// <summary>y[16g + j] = row 16g + j . activations for groups [groupStart, groupEnd).</summary>
    public static void MatVec(byte* packed, int k, byte* act, float* y, int groupStart, int groupEnd)
    {
        int nb = k / QuantMath.QK_K;
        long groupBytes = (long)nb * GroupSize;
        for (int g = groupStart; g < groupEnd; g++)
            Dot16(packed + g * groupBytes, act, nb, y + 16 * g);
    }

    /// <summary>y[t * yStride + 16g + j] for every token t (its activations at acts + t * actStride) and the groups
    /// [groupStart, groupEnd): four tokens at a time share each group's nibble unpacking.</summary>
    public static void MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd)
    {
        int nb = k / QuantMath.QK_K;
        long groupBytes = (long)nb * GroupSize;
        for (int g = groupStart; g < groupEnd; g++)
        {
            byte* group = packed + g * groupBytes;
            int t = 0;
            if (Simd.Avx512)
                for (; t + 4 <= tokens; t += 4)
                    Dot16x4Avx512(group, acts + (long)t * actStride, actStride, nb, y + (long)t * yStride + 16 * g, yStride);
            for (; t < tokens; t++)
                Dot16(group, acts + (long)t * actStride, nb, y + (long)t * yStride + 16 * g);
        }
    }

    /// <summary>The 16 rows of one group (nb super-blocks) against one token.</summary>
    public static void Dot16(byte* group, byte* act, int nb, float* y)
    {
        if (Simd.Avx512) Dot16Avx512(group, act, nb, y);
        else DotReference(group, act, nb, y);
    }

    /// <summary>The scalar reference: each row on its own, element by element from the group's layout.</summary>
    public static void DotReference(byte* group, byte* act, int nb, float* y)
    {
        for (int j = 0; j < BlockQ4_Kx16.Rows; j++)
        {
            float acc = 0, accMin = 0;
            var g = (BlockQ4_Kx16*)group;
            var a = (BlockQ8_K*)act;
            for (int b = 0; b < nb; b++, g++, a++)
            {
                int isum = 0, imin = 0;
                for (int s = 0; s < 8; s++)
                {
                    int dot = 0;
                    for (int e = 0; e < 32; e++) dot += BlockQ4_Kx16.Quant(g, j, s, e) * a->Qs[32 * s + e];
                    isum += BlockQ4_Kx16.Scale(g, j, s) * dot;
                    imin += BlockQ4_Kx16.Min(g, j, s) * (a->BSums[2 * s] + a->BSums[2 * s + 1]);
                }
                acc = MathF.FusedMultiplyAdd(isum, Fp16.ToSingle(g->D[j]) * a->D, acc);
                accMin = MathF.FusedMultiplyAdd(imin, Fp16.ToSingle(g->DMin[j]) * a->D, accMin);
            }
            y[j] = acc - accMin;
        }
    }

    /// <summary>The decode kernel: one token, 16 rows in the 16 float lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot16Avx512(byte* group, byte* act, int nb, float* y)
    {
        var m4 = Vector512.Create((byte)0x0F);
        Vector512<float> acc = default, accMin = default;
        for (int b = 0; b < nb; b++, group += GroupSize, act += sizeof(BlockQ8_K))
        {
            var g = (BlockQ4_Kx16*)group;
            var a = (BlockQ8_K*)act;
            // The block after next, line by line: with one 64-byte load per line (the 8-row kernel makes two) the
            // hardware prefetchers fell behind, 23 GB/s from memory on one core against 34 for the 8-row layout; 38 with this.
            for (int line = 0; line < GroupSize; line += 64) Sse.Prefetch0(group + 2 * GroupSize + line);
            UnpackScales(g, out var sa, out var sb, out var ma, out var mb);
            byte* q = g->Qs;
            sbyte* q8 = a->Qs;
            var isum = Pair(q, q8, m4, sa, 0) + Pair(q + 512, q8 + 64, m4, sa, 1)
                     + Pair(q + 1024, q8 + 128, m4, sb, 0) + Pair(q + 1536, q8 + 192, m4, sb, 1);
            var yd = Vector512.Create(a->D);
            acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum), Fp16.Load16ExactAvx512(g->D) * yd, acc);
            accMin = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(MinSums(ma, mb, a)), Fp16.Load16ExactAvx512(g->DMin) * yd, accMin);
        }
        (acc - accMin).Store(y);
    }

    /// <summary>The four 64-byte vectors of 6-bit values: scales of sub-blocks 0-3 (sa) and 4-7 (sb), mins likewise;
    /// row j's four values at bytes 4(j mod 8) .. + 3 of 256-bit lane j / 8.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void UnpackScales(BlockQ4_Kx16* g, out Vector512<byte> sa, out Vector512<byte> sb, out Vector512<byte> ma, out Vector512<byte> mb)
    {
        var m4 = Vector512.Create((byte)0x0F);
        var top = Vector512.Create((byte)0x30);
        var low0 = Vector512.Load(g->Low);
        var low1 = Vector512.Load(g->Low + 64);
        var high = Vector512.Load(g->High).AsUInt16();
        // 16-bit shifts move bits across bytes, but only into bits the masks clear.
        sa = (low0 & m4) | (Vector512.ShiftLeft(high, 4).AsByte() & top);
        sb = (low1 & m4) | (Vector512.ShiftLeft(high, 2).AsByte() & top);
        ma = (Vector512.ShiftRightLogical(low0.AsUInt16(), 4).AsByte() & m4) | (high.AsByte() & top);
        mb = (Vector512.ShiftRightLogical(low1.AsUInt16(), 4).AsByte() & m4) | (Vector512.ShiftRightLogical(high, 2).AsByte() & top);
    }

    /// <summary>A quant pair (two sub-blocks: the low and high nibbles of 512 bytes) of the 16 rows: each row's
    /// scaled sums in its int32 lane. `scales` is sa or sb; `half` says which pair of it (0: its sub-blocks 0, 1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<int> Pair(byte* q, sbyte* q8, Vector512<byte> m4, Vector512<byte> scales, int half)
    {
        Vector512<short> lo16 = default, hi16 = default;
        for (int i = 0; i < 8; i++)
        {
            var raw = Vector512.Load(q + 64 * i);
            var lo = raw & m4;
            var hi = Vector512.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & m4;
            lo16 += Avx512BW.MultiplyAddAdjacent(lo, Broadcast4(q8 + 4 * i));
            hi16 += Avx512BW.MultiplyAddAdjacent(hi, Broadcast4(q8 + 32 + 4 * i));
        }
        return Avx512BW.MultiplyAddAdjacent(lo16, ScaleOf(scales, 2 * half))
             + Avx512BW.MultiplyAddAdjacent(hi16, ScaleOf(scales, 2 * half + 1));
    }

    /// <summary>Row j's scale c in both int16 halves of its int32 lane: one vpshufb, which works within 128-bit lanes,
    /// so the 8-row kernels' control, repeated, serves (rows 0-3, 4-7, 8-11, 12-15 each in their own lane).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<short> ScaleOf(Vector512<byte> scales, int c) => Avx512BW.Shuffle(scales, Repeat4(c switch
    {
        0 => Vector128.Create(0x80008000u, 0x80048004u, 0x80088008u, 0x800C800Cu),
        1 => Vector128.Create(0x80018001u, 0x80058005u, 0x80098009u, 0x800D800Du),
        2 => Vector128.Create(0x80028002u, 0x80068006u, 0x800A800Au, 0x800E800Eu),
        _ => Vector128.Create(0x80038003u, 0x80078007u, 0x800B800Bu, 0x800F800Fu),
    }).AsByte()).AsInt16();

    /// <summary>The min term of the 16 rows: lane j = sum over sub-blocks s of min[j][s] * bs[s], where bs[s] =
    /// bsums[2s] + bsums[2s + 1]; per quant pair one pmaddwd of (min[j][2p], min[j][2p + 1]) by (bs[2p], bs[2p + 1]).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<int> MinSums(Vector512<byte> ma, Vector512<byte> mb, BlockQ8_K* a)
    {
        var bs = Ssse3.HorizontalAdd(Vector128.Load(a->BSums), Vector128.Load(a->BSums + 8));
        var pairs = Repeat4(bs.AsUInt32()).AsInt32(); // int32 lane p of every 128-bit lane: (bs[2p], bs[2p + 1])
        var evenPairs = Repeat4(Vector128.Create(0x80018000u, 0x80058004u, 0x80098008u, 0x800D800Cu)).AsByte();
        var oddPairs = Repeat4(Vector128.Create(0x80038002u, 0x80078006u, 0x800B800Au, 0x800F800Eu)).AsByte();
        return Avx512BW.MultiplyAddAdjacent(Avx512BW.Shuffle(ma, evenPairs).AsInt16(), Avx512F.Shuffle(pairs, 0x00).AsInt16())
             + Avx512BW.MultiplyAddAdjacent(Avx512BW.Shuffle(ma, oddPairs).AsInt16(), Avx512F.Shuffle(pairs, 0x55).AsInt16())
             + Avx512BW.MultiplyAddAdjacent(Avx512BW.Shuffle(mb, evenPairs).AsInt16(), Avx512F.Shuffle(pairs, 0xAA).AsInt16())
             + Avx512BW.MultiplyAddAdjacent(Avx512BW.Shuffle(mb, oddPairs).AsInt16(), Avx512F.Shuffle(pairs, 0xFF).AsInt16());
    }

    /// <summary>The same 128 bits in all four lanes of a 512-bit vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<uint> Repeat4(Vector128<uint> v) => Vector512.Create(Vector256.Create(v, v), Vector256.Create(v, v));

    /// <summary>4 activation bytes in every int32 lane (vpbroadcastd from memory).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<sbyte> Broadcast4(sbyte* p) => Vector512.Create(*(int*)p).AsSByte();

    /// <summary>The prompt tile: 16 rows x 4 tokens (token t's activations at act + t * actStride, its 16 results at
    /// y + t * yStride). Each 64 bytes of quants is unpacked once for the four tokens; per (row, token) the arithmetic
    /// is <see cref="Dot16Avx512"/>'s.</summary>
    // Not inlined: a caller's later tier that inlined this much would leave its helpers as calls (past the inliner's
    // budget), measured at a third of the speed.
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot16x4Avx512(byte* group, byte* act, int actStride, int nb, float* y, int yStride)
    {
        var m4 = Vector512.Create((byte)0x0F);
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        Vector512<float> min0 = default, min1 = default, min2 = default, min3 = default;
        byte* a0 = act, a1 = act + actStride, a2 = act + 2 * actStride, a3 = act + 3 * actStride;
        for (int b = 0; b < nb; b++, group += GroupSize, a0 += sizeof(BlockQ8_K), a1 += sizeof(BlockQ8_K), a2 += sizeof(BlockQ8_K), a3 += sizeof(BlockQ8_K))
        {
            var g = (BlockQ4_Kx16*)group;
            UnpackScales(g, out var sa, out var sb, out var ma, out var mb);
            Vector512<int> s0 = default, s1 = default, s2 = default, s3 = default;
            // The quants of pair p start at byte 4 + 64p of a BlockQ8_K (after its float d).
            TilePair(g->Qs, 4, a0, a1, a2, a3, m4, sa, 0, ref s0, ref s1, ref s2, ref s3);
            TilePair(g->Qs + 512, 4 + 64, a0, a1, a2, a3, m4, sa, 1, ref s0, ref s1, ref s2, ref s3);
            TilePair(g->Qs + 1024, 4 + 128, a0, a1, a2, a3, m4, sb, 0, ref s0, ref s1, ref s2, ref s3);
            TilePair(g->Qs + 1536, 4 + 192, a0, a1, a2, a3, m4, sb, 1, ref s0, ref s1, ref s2, ref s3);
            var d = Fp16.Load16ExactAvx512(g->D);
            var dmin = Fp16.Load16ExactAvx512(g->DMin);
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

    /// <summary>A quant pair of the 16 rows against 4 tokens: its low nibbles, then its high nibbles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void TilePair(byte* q, int o, byte* a0, byte* a1, byte* a2, byte* a3, Vector512<byte> m4, Vector512<byte> scales, int half,
        ref Vector512<int> s0, ref Vector512<int> s1, ref Vector512<int> s2, ref Vector512<int> s3)
    {
        TileHalf(q, a0 + o, a1 + o, a2 + o, a3 + o, m4, ScaleOf(scales, 2 * half), high: false, ref s0, ref s1, ref s2, ref s3);
        TileHalf(q, a0 + o + 32, a1 + o + 32, a2 + o + 32, a3 + o + 32, m4, ScaleOf(scales, 2 * half + 1), high: true, ref s0, ref s1, ref s2, ref s3);
    }

    /// <summary>One sub-block (the low or the high nibbles of a quant pair) of the 16 rows against 4 tokens: the
    /// nibbles are unpacked once, each token's products summed in int16 (at most 8 * 3810, as in the 8-row
    /// kernels), then scaled into its int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void TileHalf(byte* q, byte* a0, byte* a1, byte* a2, byte* a3, Vector512<byte> m4, Vector512<short> scale, bool high,
        ref Vector512<int> s0, ref Vector512<int> s1, ref Vector512<int> s2, ref Vector512<int> s3)
    {
        Vector512<short> t0 = default, t1 = default, t2 = default, t3 = default;
        for (int i = 0; i < 8; i++)
        {
            var raw = Vector512.Load(q + 64 * i);
            var nib = high ? Vector512.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & m4 : raw & m4;
            t0 += Avx512BW.MultiplyAddAdjacent(nib, Broadcast4((sbyte*)a0 + 4 * i));
            t1 += Avx512BW.MultiplyAddAdjacent(nib, Broadcast4((sbyte*)a1 + 4 * i));
            t2 += Avx512BW.MultiplyAddAdjacent(nib, Broadcast4((sbyte*)a2 + 4 * i));
            t3 += Avx512BW.MultiplyAddAdjacent(nib, Broadcast4((sbyte*)a3 + 4 * i));
        }
        s0 += Avx512BW.MultiplyAddAdjacent(t0, scale);
        s1 += Avx512BW.MultiplyAddAdjacent(t1, scale);
        s2 += Avx512BW.MultiplyAddAdjacent(t2, scale);
        s3 += Avx512BW.MultiplyAddAdjacent(t3, scale);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Accumulate(Vector512<int> sums, Vector512<float> scale, BlockQ8_K* a, Vector512<float> acc)
        => Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(sums), scale * Vector512.Create(a->D), acc);
}
