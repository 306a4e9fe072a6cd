using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Quantization.Repacked;

/// <summary>
/// Dots of <see cref="BlockQ4_0x8"/> groups (8 rows) against Q8_0 activations. Per row and block every kernel
/// forms the same exact integer, isum = sum over the 32 elements of (q - 8) * x, then acc += float(isum) *
/// (d_w * d_x) as a fused multiply-add (d_w * d_x rounded to float first), one accumulator per row: the order of
/// llama.cpp's repacked Q4_0 kernels. So the AVX2 decode kernel, the AVX2 prompt tile and the scalar reference
/// agree to the bit, and a prompt gives the bits decode gives.
///
/// Why it is faster than a row at a time (<see cref="Q8_0ActivationKernels"/>): each 32-byte load of quants holds
/// 4 bytes of each of the 8 rows, so one 4-byte activation broadcast serves all 8 rows; the unsigned nibbles go
/// straight into pmaddubsw (no -8, no sign trick: the -8 is one subtraction of 8 * sum(x) per block, formed once
/// per token for all rows), the 8 products of a block are summed in int16 before one pmaddwd, and the lanes end
/// as the 8 rows' integers, so a block of 8 rows costs one conversion and one FMA (no horizontal sums).
/// int16 cannot overflow: a pmaddubsw lane is at most 2 * 15 * 128 = 3840 in magnitude, eight of them 30720.
/// </summary>
internal static unsafe class Q4_0x8Kernels
{
    const int GroupSize = BlockQ4_0x8.Size;
    const int QK = BlockQ4_0.QK;
    const int ActBlock = 34; // block_q8_0: f16 scale + 32 int8
    /// <summary>Token-blocks whose activation scales and sums are kept on the stack (8 bytes each).</summary>
    const int MaxStackPrep = 4096;

    /// <summary>y[8g + j] = row 8g + j . activations for groups [groupStart, groupEnd) of a repacked matrix.</summary>
    public static void MatVec(byte* packed, int k, byte* act, float* y, int groupStart, int groupEnd)
    {
        int nb = k / QK;
        long groupBytes = (long)nb * GroupSize;
        if (!Simd.Avx2Fma)
        {
            for (int g = groupStart; g < groupEnd; g++) DotReference(packed + g * groupBytes, act, nb, y + 8 * g);
            return;
        }
        Span<float> dxs = nb <= MaxStackPrep ? stackalloc float[nb] : new float[nb];
        Span<int> cs = nb <= MaxStackPrep ? stackalloc int[nb] : new int[nb];
        fixed (float* dx = dxs) fixed (int* c = cs)
        {
            Prepare(act, nb, dx, c);
            for (int g = groupStart; g < groupEnd; g++)
                Dot8Avx2(packed + g * groupBytes, act, dx, c, nb, y + 8 * g);
        }
    }

    /// <summary>y[t * yStride + 8g + j] for every token t of the batch (token t's activations at acts + t * actStride)
    /// and the groups [groupStart, groupEnd). Tokens go in chunks whose activation scales and sums fit the stack;
    /// within a chunk each group meets all its tokens, four at a time sharing the nibble unpacking.</summary>
    public static void MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd)
    {
        int nb = k / QK;
        long groupBytes = (long)nb * GroupSize;
        if (!Simd.Avx2Fma)
        {
            for (int t = 0; t < tokens; t++)
                for (int g = groupStart; g < groupEnd; g++)
                    DotReference(packed + g * groupBytes, acts + (long)t * actStride, nb, y + (long)t * yStride + 8 * g);
            return;
        }
        int chunk = Math.Min(tokens, Math.Max(4, MaxStackPrep / nb / 4 * 4));
        int n = chunk * nb;
        Span<float> dxs = n <= MaxStackPrep ? stackalloc float[n] : new float[n];
        Span<int> cs = n <= MaxStackPrep ? stackalloc int[n] : new int[n];
        fixed (float* dx = dxs) fixed (int* c = cs)
            for (int t0 = 0; t0 < tokens; t0 += chunk)
            {
                int count = Math.Min(chunk, tokens - t0);
                for (int t = 0; t < count; t++) Prepare(acts + (long)(t0 + t) * actStride, nb, dx + t * nb, c + t * nb);
                for (int g = groupStart; g < groupEnd; g++)
                {
                    byte* group = packed + g * groupBytes;
                    int t = 0;
                    for (; t + 4 <= count; t += 4)
                        Dot8x4Avx2(group, acts + (long)(t0 + t) * actStride, actStride, dx + t * nb, c + t * nb, nb,
                            y + (long)(t0 + t) * yStride + 8 * g, yStride);
                    for (; t < count; t++)
                        Dot8Avx2(group, acts + (long)(t0 + t) * actStride, dx + t * nb, c + t * nb, nb, y + (long)(t0 + t) * yStride + 8 * g);
                }
            }
    }

    /// <summary>The scalar reference: each row on its own, element by element from the group's layout.</summary>
    public static void DotReference(byte* group, byte* act, int nb, float* y)
    {
        for (int j = 0; j < BlockQ4_0x8.Rows; j++)
        {
            float acc = 0;
            var g = (BlockQ4_0x8*)group;
            byte* a = act;
            for (int b = 0; b < nb; b++, g++, a += ActBlock)
            {
                int isum = 0;
                for (int e = 0; e < QK; e++) isum += (BlockQ4_0x8.Quant(g, j, e) - 8) * ((sbyte*)a)[2 + e];
                acc = MathF.FusedMultiplyAdd(isum, Fp16.ToSingle(g->D[j]) * Fp16.ToSingle(*(ushort*)a), acc);
            }
            y[j] = acc;
        }
    }

    /// <summary>Per activation block b of one token: its scale as a float and 8 * the sum of its 32 quants (what
    /// the unsigned nibbles' dot exceeds the (q - 8) dot by).</summary>
    static void Prepare(byte* act, int nb, float* dx, int* c)
    {
        var ones = Vector256.Create((byte)1);
        for (int b = 0; b < nb; b++, act += ActBlock)
        {
            dx[b] = Fp16.ToSingle(*(ushort*)act);
            var pairs = Avx2.MultiplyAddAdjacent(ones, Vector256.Load((sbyte*)(act + 2)));
            c[b] = 8 * Vector256.Sum(Avx2.MultiplyAddAdjacent(pairs, Vector256.Create((short)1)));
        }
    }

    /// <summary>The decode kernel: one token, 8 rows in the 8 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot8Avx2(byte* group, byte* act, float* dx, int* c, int nb, float* y)
    {
        var m4 = Vector256.Create((byte)0x0F);
        Vector256<float> acc = default;
        byte* x = act + 2;
        for (int b = 0; b < nb; b++, group += GroupSize, x += ActBlock)
        {
            var g = (BlockQ4_0x8*)group;
            var r0 = Vector256.Load(g->Qs);
            var r1 = Vector256.Load(g->Qs + 32);
            var r2 = Vector256.Load(g->Qs + 64);
            var r3 = Vector256.Load(g->Qs + 96);
            var s = Avx2.MultiplyAddAdjacent(r0 & m4, Broadcast4(x))
                  + Avx2.MultiplyAddAdjacent(r1 & m4, Broadcast4(x + 4))
                  + Avx2.MultiplyAddAdjacent(r2 & m4, Broadcast4(x + 8))
                  + Avx2.MultiplyAddAdjacent(r3 & m4, Broadcast4(x + 12))
                  + Avx2.MultiplyAddAdjacent(High(r0, m4), Broadcast4(x + 16))
                  + Avx2.MultiplyAddAdjacent(High(r1, m4), Broadcast4(x + 20))
                  + Avx2.MultiplyAddAdjacent(High(r2, m4), Broadcast4(x + 24))
                  + Avx2.MultiplyAddAdjacent(High(r3, m4), Broadcast4(x + 28));
            acc = Accumulate(s, c[b], Fp16.Load8(g->D), dx[b], acc);
        }
        acc.Store(y);
    }

    /// <summary>The prompt tile: 8 rows x 4 tokens (token t's activations at act + t * actStride, its scales and sums
    /// at dx + t * nb and c + t * nb, its 8 results at y + t * yStride). Each block's nibbles are unpacked once for
    /// the four tokens; per (row, token) the arithmetic is <see cref="Dot8Avx2"/>'s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot8x4Avx2(byte* group, byte* act, int actStride, float* dx, int* c, int nb, float* y, int yStride)
    {
        var m4 = Vector256.Create((byte)0x0F);
        Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        byte* x0 = act + 2, x1 = x0 + actStride, x2 = x0 + 2 * actStride, x3 = x0 + 3 * actStride;
        for (int b = 0; b < nb; b++, group += GroupSize)
        {
            var g = (BlockQ4_0x8*)group;
            var r0 = Vector256.Load(g->Qs);
            var r1 = Vector256.Load(g->Qs + 32);
            var r2 = Vector256.Load(g->Qs + 64);
            var r3 = Vector256.Load(g->Qs + 96);
            var l0 = r0 & m4; var l1 = r1 & m4; var l2 = r2 & m4; var l3 = r3 & m4;
            var h0 = High(r0, m4); var h1 = High(r1, m4); var h2 = High(r2, m4); var h3 = High(r3, m4);
            var d = Fp16.Load8(g->D);
            int o = b * ActBlock;
            acc0 = Accumulate(Sums(l0, l1, l2, l3, h0, h1, h2, h3, x0 + o), c[b], d, dx[b], acc0);
            acc1 = Accumulate(Sums(l0, l1, l2, l3, h0, h1, h2, h3, x1 + o), c[nb + b], d, dx[nb + b], acc1);
            acc2 = Accumulate(Sums(l0, l1, l2, l3, h0, h1, h2, h3, x2 + o), c[2 * nb + b], d, dx[2 * nb + b], acc2);
            acc3 = Accumulate(Sums(l0, l1, l2, l3, h0, h1, h2, h3, x3 + o), c[3 * nb + b], d, dx[3 * nb + b], acc3);
        }
        acc0.Store(y);
        acc1.Store(y + yStride);
        acc2.Store(y + 2 * yStride);
        acc3.Store(y + 3 * yStride);
    }

    /// <summary>One token's int16 pair sums of a block of the 8 rows (its quants at x), from unpacked nibbles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<short> Sums(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
        Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3, byte* x)
        => Avx2.MultiplyAddAdjacent(l0, Broadcast4(x)) + Avx2.MultiplyAddAdjacent(l1, Broadcast4(x + 4))
         + Avx2.MultiplyAddAdjacent(l2, Broadcast4(x + 8)) + Avx2.MultiplyAddAdjacent(l3, Broadcast4(x + 12))
         + Avx2.MultiplyAddAdjacent(h0, Broadcast4(x + 16)) + Avx2.MultiplyAddAdjacent(h1, Broadcast4(x + 20))
         + Avx2.MultiplyAddAdjacent(h2, Broadcast4(x + 24)) + Avx2.MultiplyAddAdjacent(h3, Broadcast4(x + 28));

    /// <summary>acc + float(isum) * (d_w * d_x), isum = the pair sums added into int32 lanes less 8 * sum(x).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Accumulate(Vector256<short> sums, int c, Vector256<float> dw, float dx, Vector256<float> acc)
    {
        var isum = Avx2.MultiplyAddAdjacent(sums, Vector256.Create((short)1)) - Vector256.Create(c);
        return Fma.MultiplyAdd(Avx.ConvertToVector256Single(isum), dw * Vector256.Create(dx), acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<byte> High(Vector256<byte> raw, Vector256<byte> m4) => Vector256.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & m4;

    /// <summary>4 activation bytes in every int32 lane (vpbroadcastd from memory).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<sbyte> Broadcast4(byte* p) => Avx2.BroadcastScalarToVector256((int*)p).AsSByte();
}
