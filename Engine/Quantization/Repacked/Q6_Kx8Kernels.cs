using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Quantization.Repacked;

/// <summary>
/// Dots of <see cref="BlockQ6_Kx8"/> groups (8 rows) against Q8_K activations. Per row and super-block every
/// kernel forms the same exact integer isum = sum over sub-blocks s of scale[s] * ((q - 32) . q8 over s), then
/// acc += float(isum) * (d * yd) as a fused multiply-add: so the AVX2 decode kernel, the AVX2 prompt tile and the
/// scalar reference agree to the bit, and a prompt gives the bits decode gives.
///
/// The AVX2 kernels multiply the unsigned 6-bit quants (0..63) by the activations with pmaddubsw and take the
/// -32 once per super-block through the Q8_K bsums (isum = sum scale * (q . q8) - 32 * sum scale * bsum), as the
/// row kernel does. Each 32-byte vector of quants holds 4 elements of each of the 8 rows, so one 4-byte
/// activation broadcast serves the 8 rows and the lanes end as the 8 row results (no horizontal sums).
/// int16 bounds: a pmaddubsw lane is at most 2 * 63 * 127 = 16002 (Q8_K quants lie in [-127, 127]), so two of
/// them (32004) may be summed in int16 before the pmaddwd by the scales, not three: a sub-block (four vectors)
/// costs two pmaddwd where the row kernel pays four. int32 bounds: |sum scale * (q . q8)| &lt;= 16 * 128 * 16 * 63 *
/// 127 &lt; 2^28 and 32 * |sum scale * bsum| &lt;= 32 * 16 * 128 * 2032 &lt; 2^28.
/// </summary>
internal static unsafe class Q6_Kx8Kernels
{
    const int GroupSize = BlockQ6_Kx8.Size;

    /// <summary>y[8g + j] = row 8g + j . activations for groups [groupStart, groupEnd) of a repacked matrix.</summary>
    public static void MatVec(byte* packed, int k, byte* act, float* y, int groupStart, int groupEnd)
    {
        int nb = k / QuantMath.QK_K;
        long groupBytes = (long)nb * GroupSize;
        for (int g = groupStart; g < groupEnd; g++)
            Dot8(packed + g * groupBytes, act, nb, y + 8 * g);
    }

    /// <summary>y[t * yStride + 8g + j] for every token t of the batch (token t's activations at acts + t * actStride)
    /// and the groups [groupStart, groupEnd): eight tokens at a time, then four, share each group's quant unpacking
    /// (the 8-token tile is about 10% faster than two 4-token ones: unpacking is a third of the 4-token tile's work).</summary>
    public static void MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd)
    {
        int nb = k / QuantMath.QK_K;
        long groupBytes = (long)nb * GroupSize;
        for (int g = groupStart; g < groupEnd; g++)
        {
            byte* group = packed + g * groupBytes;
            int t = 0;
            if (Simd.Avx2Fma)
            {
                for (; t + 8 <= tokens; t += 8)
                    Dot8x8Avx2(group, acts + (long)t * actStride, actStride, nb, y + (long)t * yStride + 8 * g, yStride);
                for (; t + 4 <= tokens; t += 4)
                    Dot8x4Avx2(group, acts + (long)t * actStride, actStride, nb, y + (long)t * yStride + 8 * g, yStride);
            }
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
        for (int j = 0; j < BlockQ6_Kx8.Rows; j++)
        {
            float acc = 0;
            var g = (BlockQ6_Kx8*)group;
            var a = (BlockQ8_K*)act;
            for (int b = 0; b < nb; b++, g++, a++)
            {
                int isum = 0;
                for (int s = 0; s < 16; s++)
                {
                    int dot = 0;
                    for (int e = 16 * s; e < 16 * s + 16; e++)
                        dot += (BlockQ6_Kx8.Quant(g, j, e) - 32) * a->Qs[e];
                    isum += BlockQ6_Kx8.Scale(g, j, s) * dot;
                }
                acc = MathF.FusedMultiplyAdd(isum, Fp16.ToSingle(g->D[j]) * a->D, acc);
            }
            y[j] = acc;
        }
    }

    /// <summary>The decode kernel: one token, 8 rows in the 8 float lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot8Avx2(byte* group, byte* act, int nb, float* y)
    {
        Vector256<float> acc = default;
        for (int b = 0; b < nb; b++, group += GroupSize, act += sizeof(BlockQ8_K))
        {
            var g = (BlockQ6_Kx8*)group;
            var a = (BlockQ8_K*)act;
            var isum = -(Offset(g, a) << 5);
            for (int p = 0; p < 8; p++)
            {
                var pair = ScalePair(g, p);
                isum += SubBlock(g, 2 * p, a->Qs, ScaleOf(pair, 0)) + SubBlock(g, 2 * p + 1, a->Qs, ScaleOf(pair, 1));
            }
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(isum), Fp16.Load8(g->D) * Vector256.Create(a->D), acc);
        }
        acc.Store(y);
    }

    /// <summary>Sub-block s of the 8 rows against one token: lane j = scale[j][s] * (q . q8) over its 16 elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> SubBlock(BlockQ6_Kx8* g, int s, sbyte* q8, Vector256<short> scale)
    {
        Unpack(g, s, out var q0, out var q1, out var q2, out var q3);
        q8 += 16 * s;
        var s01 = Avx2.MultiplyAddAdjacent(q0, Broadcast4(q8)) + Avx2.MultiplyAddAdjacent(q1, Broadcast4(q8 + 4));
        var s23 = Avx2.MultiplyAddAdjacent(q2, Broadcast4(q8 + 8)) + Avx2.MultiplyAddAdjacent(q3, Broadcast4(q8 + 12));
        return Avx2.MultiplyAddAdjacent(s01, scale) + Avx2.MultiplyAddAdjacent(s23, scale);
    }

    /// <summary>The four quarters (4 elements of each row) of sub-block s as unsigned 6-bit quants.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Unpack(BlockQ6_Kx8* g, int s, out Vector256<byte> q0, out Vector256<byte> q1, out Vector256<byte> q2, out Vector256<byte> q3)
    {
        var m4 = Vector256.Create((byte)0x0F);
        var m2 = Vector256.Create((byte)0x30);
        byte* q = g->Qs + 96 * s;
        var l1 = Vector256.Load(q);
        var l2 = Vector256.Load(q + 32);
        var h = Vector256.Load(q + 64).AsUInt16();
        // 16-bit shifts move bits across bytes, but only into bits the masks clear.
        q0 = (l1 & m4) | (Vector256.ShiftLeft(h, 4).AsByte() & m2);
        q1 = (l2 & m4) | (Vector256.ShiftLeft(h, 2).AsByte() & m2);
        q2 = (Vector256.ShiftRightLogical(l1.AsUInt16(), 4).AsByte() & m4) | (h.AsByte() & m2);
        q3 = (Vector256.ShiftRightLogical(l2.AsUInt16(), 4).AsByte() & m4) | (Vector256.ShiftRightLogical(h, 2).AsByte() & m2);
    }

    /// <summary>Scales of sub-blocks 2p and 2p + 1, sign-extended: int32 lane j = (scale[j][2p], scale[j][2p + 1]).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<short> ScalePair(BlockQ6_Kx8* g, int p) => Avx2.ConvertToVector256Int16(g->Scales + 16 * p);

    /// <summary>Row j's scale t (0: even sub-block, 1: odd) of a pair in both int16 halves of int32 lane j.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<short> ScaleOf(Vector256<short> pair, int t) => Avx2.Shuffle(pair.AsByte(), (t == 0
        ? Vector256.Create(0x01000100u, 0x05040504u, 0x09080908u, 0x0D0C0D0Cu, 0x01000100u, 0x05040504u, 0x09080908u, 0x0D0C0D0Cu)
        : Vector256.Create(0x03020302u, 0x07060706u, 0x0B0A0B0Au, 0x0F0E0F0Eu, 0x03020302u, 0x07060706u, 0x0B0A0B0Au, 0x0F0E0F0Eu)).AsByte()).AsInt16();

    /// <summary>Lane j = sum over sub-blocks s of scale[j][s] * bsum[s]: per pair one pmaddwd by (bsum[2p], bsum[2p + 1]).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Offset(BlockQ6_Kx8* g, BlockQ8_K* a)
    {
        Vector256<int> sum = default;
        for (int p = 0; p < 8; p++)
            sum += Avx2.MultiplyAddAdjacent(ScalePair(g, p), Avx2.BroadcastScalarToVector256((int*)(a->BSums + 2 * p)).AsInt16());
        return sum;
    }

    /// <summary>4 activation bytes in every int32 lane (vpbroadcastd from memory).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<sbyte> Broadcast4(sbyte* p) => Avx2.BroadcastScalarToVector256((int*)p).AsSByte();

    /// <summary>The prompt tile: 8 rows x 4 tokens (token t's activations at act + t * actStride, its 8 results
    /// at y + t * yStride). Each sub-block's quants and scale are unpacked once for the four tokens; per (row,
    /// token) the arithmetic is <see cref="Dot8Avx2"/>'s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot8x4Avx2(byte* group, byte* act, int actStride, int nb, float* y, int yStride)
    {
        Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        var a0 = (BlockQ8_K*)act; var a1 = (BlockQ8_K*)(act + actStride);
        var a2 = (BlockQ8_K*)(act + 2 * actStride); var a3 = (BlockQ8_K*)(act + 3 * actStride);
        for (int b = 0; b < nb; b++, group += GroupSize, a0++, a1++, a2++, a3++)
        {
            var g = (BlockQ6_Kx8*)group;
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
            var d = Fp16.Load8(g->D);
            acc0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s0), d * Vector256.Create(a0->D), acc0);
            acc1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s1), d * Vector256.Create(a1->D), acc1);
            acc2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s2), d * Vector256.Create(a2->D), acc2);
            acc3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s3), d * Vector256.Create(a3->D), acc3);
        }
        acc0.Store(y);
        acc1.Store(y + yStride);
        acc2.Store(y + 2 * yStride);
        acc3.Store(y + 3 * yStride);
    }

    /// <summary>The wide prompt tile: 8 rows x 8 tokens, each sub-block unpacked once for eight tokens.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot8x8Avx2(byte* group, byte* act, int actStride, int nb, float* y, int yStride)
    {
        var acc = stackalloc Vector256<float>[8];
        for (int t = 0; t < 8; t++) acc[t] = default;
        for (int b = 0; b < nb; b++, group += GroupSize)
        {
            var g = (BlockQ6_Kx8*)group;
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
            var d = Fp16.Load8(g->D);
            acc[0] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s0), d * Vector256.Create(a0->D), acc[0]);
            acc[1] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s1), d * Vector256.Create(a1->D), acc[1]);
            acc[2] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s2), d * Vector256.Create(a2->D), acc[2]);
            acc[3] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s3), d * Vector256.Create(a3->D), acc[3]);
            acc[4] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s4), d * Vector256.Create(a4->D), acc[4]);
            acc[5] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s5), d * Vector256.Create(a5->D), acc[5]);
            acc[6] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s6), d * Vector256.Create(a6->D), acc[6]);
            acc[7] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s7), d * Vector256.Create(a7->D), acc[7]);
        }
        for (int t = 0; t < 8; t++) acc[t].Store(y + t * yStride);
    }

    /// <summary>One unpacked sub-block of the 8 rows against one token's 16 activations.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> TileSubBlock(Vector256<byte> q0, Vector256<byte> q1, Vector256<byte> q2, Vector256<byte> q3, Vector256<short> scale, sbyte* q8)
    {
        var s01 = Avx2.MultiplyAddAdjacent(q0, Broadcast4(q8)) + Avx2.MultiplyAddAdjacent(q1, Broadcast4(q8 + 4));
        var s23 = Avx2.MultiplyAddAdjacent(q2, Broadcast4(q8 + 8)) + Avx2.MultiplyAddAdjacent(q3, Broadcast4(q8 + 12));
        return Avx2.MultiplyAddAdjacent(s01, scale) + Avx2.MultiplyAddAdjacent(s23, scale);
    }
}
