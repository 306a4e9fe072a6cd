using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Quantization.Repacked;

/// <summary>
/// Dots of <see cref="BlockQ6_Kx16"/> groups (16 rows) against Q8_K activations: <see cref="Q6_Kx8Kernels"/>'s
/// arithmetic with 512-bit vectors, rows 0-7 in the low 256 bits and 8-15 in the high ones. Per row and super-block
/// the same exact integer isum, then acc += float(isum) * (d * yd) as a fused multiply-add: the bits of the 8-row
/// layout and of <see cref="DotReference"/>, in the decode kernel and the prompt tiles alike. The int16 and int32
/// bounds are the 8-row kernels'.
/// </summary>
internal static unsafe class Q6_Kx16Kernels
{
    const int GroupSize = BlockQ6_Kx16.Size;

    /// <summary>y[16g + j] = row 16g + j . activations for groups [groupStart, groupEnd).</summary>
    public static void MatVec(byte* packed, int k, byte* act, float* y, int groupStart, int groupEnd)
    {
        int nb = k / QuantMath.QK_K;
        long groupBytes = (long)nb * GroupSize;
        for (int g = groupStart; g < groupEnd; g++)
            Dot16(packed + g * groupBytes, act, nb, y + 16 * g);
    }

    /// <summary>y[t * yStride + 16g + j] for every token t (its activations at acts + t * actStride) and the groups
    /// [groupStart, groupEnd): eight tokens at a time, then four, share each sub-block's unpacking.</summary>
    public static void MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd)
    {
        int nb = k / QuantMath.QK_K;
        long groupBytes = (long)nb * GroupSize;
        for (int g = groupStart; g < groupEnd; g++)
        {
            byte* group = packed + g * groupBytes;
            int t = 0;
            if (Simd.Avx512)
            {
                for (; t + 8 <= tokens; t += 8)
                    Dot16x8Avx512(group, acts + (long)t * actStride, actStride, nb, y + (long)t * yStride + 16 * g, yStride);
                for (; t + 4 <= tokens; t += 4)
                    Dot16x4Avx512(group, acts + (long)t * actStride, actStride, nb, y + (long)t * yStride + 16 * g, yStride);
            }
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
        for (int j = 0; j < BlockQ6_Kx16.Rows; j++)
        {
            float acc = 0;
            var g = (BlockQ6_Kx16*)group;
            var a = (BlockQ8_K*)act;
            for (int b = 0; b < nb; b++, g++, a++)
            {
                int isum = 0;
                for (int s = 0; s < 16; s++)
                {
                    int dot = 0;
                    for (int e = 16 * s; e < 16 * s + 16; e++)
                        dot += (BlockQ6_Kx16.Quant(g, j, e) - 32) * a->Qs[e];
                    isum += BlockQ6_Kx16.Scale(g, j, s) * dot;
                }
                acc = MathF.FusedMultiplyAdd(isum, Fp16.ToSingle(g->D[j]) * a->D, acc);
            }
            y[j] = acc;
        }
    }

    /// <summary>The decode kernel: one token, 16 rows in the 16 float lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot16Avx512(byte* group, byte* act, int nb, float* y)
    {
        Vector512<float> acc = default;
        for (int b = 0; b < nb; b++, group += GroupSize, act += sizeof(BlockQ8_K))
        {
            var g = (BlockQ6_Kx16*)group;
            var a = (BlockQ8_K*)act;
            // The block after next, line by line: the prefetchers fall behind one 64-byte load per line (see Q4_Kx16Kernels).
            for (int line = 0; line < GroupSize; line += 64) Sse.Prefetch0(group + 2 * GroupSize + line);
            var isum = -(Offset(g, a) << 5);
            for (int p = 0; p < 8; p++)
            {
                var pair = ScalePair(g, p);
                isum += SubBlock(g, 2 * p, a->Qs, ScaleOf(pair, 0)) + SubBlock(g, 2 * p + 1, a->Qs, ScaleOf(pair, 1));
            }
            acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum), Fp16.Load16ExactAvx512(g->D) * Vector512.Create(a->D), acc);
        }
        acc.Store(y);
    }

    /// <summary>Sub-block s of the 16 rows against one token: lane j = scale[j][s] * (q . q8) over its 16 elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<int> SubBlock(BlockQ6_Kx16* g, int s, sbyte* q8, Vector512<short> scale)
    {
        Unpack(g, s, out var q0, out var q1, out var q2, out var q3);
        return TileSubBlock(q0, q1, q2, q3, scale, q8 + 16 * s);
    }

    /// <summary>The four quarters (4 elements of each row) of sub-block s as unsigned 6-bit quants.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Unpack(BlockQ6_Kx16* g, int s, out Vector512<byte> q0, out Vector512<byte> q1, out Vector512<byte> q2, out Vector512<byte> q3)
    {
        var m4 = Vector512.Create((byte)0x0F);
        var m2 = Vector512.Create((byte)0x30);
        byte* q = g->Qs + 192 * s;
        var l1 = Vector512.Load(q);
        var l2 = Vector512.Load(q + 64);
        var h = Vector512.Load(q + 128).AsUInt16();
        // 16-bit shifts move bits across bytes, but only into bits the masks clear.
        q0 = (l1 & m4) | (Vector512.ShiftLeft(h, 4).AsByte() & m2);
        q1 = (l2 & m4) | (Vector512.ShiftLeft(h, 2).AsByte() & m2);
        q2 = (Vector512.ShiftRightLogical(l1.AsUInt16(), 4).AsByte() & m4) | (h.AsByte() & m2);
        q3 = (Vector512.ShiftRightLogical(l2.AsUInt16(), 4).AsByte() & m4) | (Vector512.ShiftRightLogical(h, 2).AsByte() & m2);
    }

    /// <summary>Scales of sub-blocks 2p and 2p + 1, sign-extended: int32 lane j = (scale[j][2p], scale[j][2p + 1]).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<short> ScalePair(BlockQ6_Kx16* g, int p) => Avx512BW.ConvertToVector512Int16(Vector256.Load(g->Scales + 32 * p));

    /// <summary>Row j's scale t (0: even sub-block, 1: odd) of a pair in both int16 halves of int32 lane j (vpshufb
    /// works within 128-bit lanes: the 8-row kernels' control in each).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<short> ScaleOf(Vector512<short> pair, int t) => Avx512BW.Shuffle(pair.AsByte(), (t == 0
        ? Vector512.Create(0x01000100u, 0x05040504u, 0x09080908u, 0x0D0C0D0Cu, 0x01000100u, 0x05040504u, 0x09080908u, 0x0D0C0D0Cu,
                           0x01000100u, 0x05040504u, 0x09080908u, 0x0D0C0D0Cu, 0x01000100u, 0x05040504u, 0x09080908u, 0x0D0C0D0Cu)
        : Vector512.Create(0x03020302u, 0x07060706u, 0x0B0A0B0Au, 0x0F0E0F0Eu, 0x03020302u, 0x07060706u, 0x0B0A0B0Au, 0x0F0E0F0Eu,
                           0x03020302u, 0x07060706u, 0x0B0A0B0Au, 0x0F0E0F0Eu, 0x03020302u, 0x07060706u, 0x0B0A0B0Au, 0x0F0E0F0Eu)).AsByte()).AsInt16();

    /// <summary>Lane j = sum over sub-blocks s of scale[j][s] * bsum[s]: per pair one pmaddwd by (bsum[2p], bsum[2p + 1]).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<int> Offset(BlockQ6_Kx16* g, BlockQ8_K* a)
    {
        Vector512<int> sum = default;
        for (int p = 0; p < 8; p++)
            sum += Avx512BW.MultiplyAddAdjacent(ScalePair(g, p), Vector512.Create(*(int*)(a->BSums + 2 * p)).AsInt16());
        return sum;
    }

    /// <summary>4 activation bytes in every int32 lane (vpbroadcastd from memory).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<sbyte> Broadcast4(sbyte* p) => Vector512.Create(*(int*)p).AsSByte();

    /// <summary>One unpacked sub-block of the 16 rows against one token's 16 activations.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<int> TileSubBlock(Vector512<byte> q0, Vector512<byte> q1, Vector512<byte> q2, Vector512<byte> q3, Vector512<short> scale, sbyte* q8)
    {
        var s01 = Avx512BW.MultiplyAddAdjacent(q0, Broadcast4(q8)) + Avx512BW.MultiplyAddAdjacent(q1, Broadcast4(q8 + 4));
        var s23 = Avx512BW.MultiplyAddAdjacent(q2, Broadcast4(q8 + 8)) + Avx512BW.MultiplyAddAdjacent(q3, Broadcast4(q8 + 12));
        return Avx512BW.MultiplyAddAdjacent(s01, scale) + Avx512BW.MultiplyAddAdjacent(s23, scale);
    }

    /// <summary>The prompt tile: 16 rows x 4 tokens, each sub-block's quants and scale unpacked once for the four.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot16x4Avx512(byte* group, byte* act, int actStride, int nb, float* y, int yStride)
    {
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        var a0 = (BlockQ8_K*)act; var a1 = (BlockQ8_K*)(act + actStride);
        var a2 = (BlockQ8_K*)(act + 2 * actStride); var a3 = (BlockQ8_K*)(act + 3 * actStride);
        for (int b = 0; b < nb; b++, group += GroupSize, a0++, a1++, a2++, a3++)
        {
            var g = (BlockQ6_Kx16*)group;
            var s0 = -(Offset(g, a0) << 5); var s1 = -(Offset(g, a1) << 5);
            var s2 = -(Offset(g, a2) << 5); var s3 = -(Offset(g, a3) << 5);
            for (int s = 0; s < 16; s++)
            {
                Unpack(g, s, out var q0, out var q1, out var q2, out var q3);
                var scale = ScaleOf(ScalePair(g, s >> 1), s & 1);
                int o = 16 * s;
                s0 += TileSubBlock(q0, q1, q2, q3, scale, a0->Qs + o);
                s1 += TileSubBlock(q0, q1, q2, q3, scale, a1->Qs + o);
                s2 += TileSubBlock(q0, q1, q2, q3, scale, a2->Qs + o);
                s3 += TileSubBlock(q0, q1, q2, q3, scale, a3->Qs + o);
            }
            var d = Fp16.Load16ExactAvx512(g->D);
            acc0 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s0), d * Vector512.Create(a0->D), acc0);
            acc1 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s1), d * Vector512.Create(a1->D), acc1);
            acc2 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s2), d * Vector512.Create(a2->D), acc2);
            acc3 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s3), d * Vector512.Create(a3->D), acc3);
        }
        acc0.Store(y);
        acc1.Store(y + yStride);
        acc2.Store(y + 2 * yStride);
        acc3.Store(y + 3 * yStride);
    }

    /// <summary>The wide prompt tile: 16 rows x 8 tokens, each sub-block unpacked once for eight tokens.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot16x8Avx512(byte* group, byte* act, int actStride, int nb, float* y, int yStride)
    {
        var acc = stackalloc Vector512<float>[8];
        for (int t = 0; t < 8; t++) acc[t] = default;
        for (int b = 0; b < nb; b++, group += GroupSize)
        {
            var g = (BlockQ6_Kx16*)group;
            long o8 = (long)b * sizeof(BlockQ8_K);
            var a0 = (BlockQ8_K*)(act + o8); var a1 = (BlockQ8_K*)(act + actStride + o8);
            var a2 = (BlockQ8_K*)(act + 2 * actStride + o8); var a3 = (BlockQ8_K*)(act + 3 * actStride + o8);
            var a4 = (BlockQ8_K*)(act + 4 * actStride + o8); var a5 = (BlockQ8_K*)(act + 5 * actStride + o8);
            var a6 = (BlockQ8_K*)(act + 6 * actStride + o8); var a7 = (BlockQ8_K*)(act + 7 * actStride + o8);
            var s0 = -(Offset(g, a0) << 5); var s1 = -(Offset(g, a1) << 5);
            var s2 = -(Offset(g, a2) << 5); var s3 = -(Offset(g, a3) << 5);
            var s4 = -(Offset(g, a4) << 5); var s5 = -(Offset(g, a5) << 5);
            var s6 = -(Offset(g, a6) << 5); var s7 = -(Offset(g, a7) << 5);
            for (int s = 0; s < 16; s++)
            {
                Unpack(g, s, out var q0, out var q1, out var q2, out var q3);
                var scale = ScaleOf(ScalePair(g, s >> 1), s & 1);
                int o = 16 * s;
                s0 += TileSubBlock(q0, q1, q2, q3, scale, a0->Qs + o);
                s1 += TileSubBlock(q0, q1, q2, q3, scale, a1->Qs + o);
                s2 += TileSubBlock(q0, q1, q2, q3, scale, a2->Qs + o);
                s3 += TileSubBlock(q0, q1, q2, q3, scale, a3->Qs + o);
                s4 += TileSubBlock(q0, q1, q2, q3, scale, a4->Qs + o);
                s5 += TileSubBlock(q0, q1, q2, q3, scale, a5->Qs + o);
                s6 += TileSubBlock(q0, q1, q2, q3, scale, a6->Qs + o);
                s7 += TileSubBlock(q0, q1, q2, q3, scale, a7->Qs + o);
            }
            var d = Fp16.Load16ExactAvx512(g->D);
            acc[0] = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s0), d * Vector512.Create(a0->D), acc[0]);
            acc[1] = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s1), d * Vector512.Create(a1->D), acc[1]);
            acc[2] = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s2), d * Vector512.Create(a2->D), acc[2]);
            acc[3] = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s3), d * Vector512.Create(a3->D), acc[3]);
            acc[4] = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s4), d * Vector512.Create(a4->D), acc[4]);
            acc[5] = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s5), d * Vector512.Create(a5->D), acc[5]);
            acc[6] = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s6), d * Vector512.Create(a6->D), acc[6]);
            acc[7] = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s7), d * Vector512.Create(a7->D), acc[7]);
        }
        for (int t = 0; t < 8; t++) acc[t].Store(y + t * yStride);
    }
}
