using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Quantization.Repacked;

/// <summary>
/// Dots of <see cref="BlockQ8_0x8"/> groups (8 rows) against Q8_0 activations. Per row and block every kernel forms
/// the same exact integer, isum = sum over the 32 elements of q * x, then acc += float(isum) * (d_w * d_x) as a fused
/// multiply-add (d_w * d_x rounded to float first), one accumulator per row: llama.cpp's repacked order. So the
/// decode kernel, the prompt tile and the scalar reference agree to the bit, and a prompt gives the bits decode gives.
///
/// Why it is faster than the row kernels for a few tokens at a time (many sequences decoding together): the row
/// kernels' prompt tile first decodes its rows into scratch, a cost paid per call that only a long prompt amortizes;
/// here the repacked copy is already the tile's layout. vpdpbusd multiplies the stored q + 128 by 4 signed activation
/// bytes and sums into each row's int32 lane (no saturation: |lane| &lt;= 4 * 255 * 127 per instruction, and 8 per
/// block stay below 2^21); the excess 128 * sum(x) is one subtraction per token and block for all 8 rows.
/// </summary>
internal static unsafe class Q8_0x8Kernels
{
    const int GroupSize = BlockQ8_0x8.Size;
    const int QK = 32;
    const int ActBlock = 34; // block_q8_0: f16 scale + 32 int8
    /// <summary>Token-blocks whose activation scales and sums are kept on the stack (8 bytes each).</summary>
    const int MaxStackPrep = 4096;

    /// <summary>y[8g + j] = row 8g + j . activations for groups [groupStart, groupEnd) of a repacked matrix.</summary>
    public static void MatVec(byte* packed, int k, byte* act, float* y, int groupStart, int groupEnd)
    {
        int nb = k / QK;
        long groupBytes = (long)nb * GroupSize;
        if (!Fast)
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
                Dot8Vnni(packed + g * groupBytes, act, dx, c, nb, y + 8 * g);
        }
    }

    /// <summary>y[t * yStride + 8g + j] for every token t of the batch (token t's activations at acts + t * actStride)
    /// and the groups [groupStart, groupEnd). Tokens go in chunks whose activation scales and sums fit the stack;
    /// within a chunk each group meets all its tokens, four at a time sharing each load of the quants.</summary>
    public static void MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd)
    {
        int nb = k / QK;
        long groupBytes = (long)nb * GroupSize;
        if (!Fast)
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
                        Dot8x4Vnni(group, acts + (long)(t0 + t) * actStride, actStride, dx + t * nb, c + t * nb, nb,
                            y + (long)(t0 + t) * yStride + 8 * g, yStride);
                    for (; t < count; t++)
                        Dot8Vnni(group, acts + (long)(t0 + t) * actStride, dx + t * nb, c + t * nb, nb, y + (long)(t0 + t) * yStride + 8 * g);
                }
            }
    }

    /// <summary>True where the VNNI kernels run (the layout is only chosen there; elsewhere, as in the tests' reruns
    /// without it, the reference).</summary>
    static bool Fast => Simd.Avx2Fma && AvxVnni.IsSupported;

    /// <summary>The scalar reference: each row on its own, element by element from the group's layout.</summary>
    public static void DotReference(byte* group, byte* act, int nb, float* y)
    {
        for (int j = 0; j < BlockQ8_0x8.Rows; j++)
        {
            float acc = 0;
            var g = (BlockQ8_0x8*)group;
            byte* a = act;
            for (int b = 0; b < nb; b++, g++, a += ActBlock)
            {
                int isum = 0;
                for (int e = 0; e < QK; e++) isum += BlockQ8_0x8.Quant(g, j, e) * ((sbyte*)a)[2 + e];
                acc = MathF.FusedMultiplyAdd(isum, Fp16.ToSingle(g->D[j]) * Fp16.ToSingle(*(ushort*)a), acc);
            }
            y[j] = acc;
        }
    }

    /// <summary>Per activation block b of one token: its scale as a float and 128 * the sum of its 32 quants (what
    /// the dot of the stored q + 128 exceeds the dot of q by).</summary>
    static void Prepare(byte* act, int nb, float* dx, int* c)
    {
        var ones = Vector256.Create((byte)1);
        for (int b = 0; b < nb; b++, act += ActBlock)
        {
            dx[b] = Fp16.ToSingle(*(ushort*)act);
            c[b] = 128 * Vector256.Sum(AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, ones, Vector256.Load((sbyte*)(act + 2))));
        }
    }

    /// <summary>4 activation bytes in every int32 lane (vpbroadcastd from memory).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<sbyte> Broadcast4(byte* p) => Avx2.BroadcastScalarToVector256((int*)p).AsSByte();

    /// <summary>The 8 rows' integer dots of one block against one token (its quants at x): two chains of four
    /// vpdpbusd, so the second does not wait on the first.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> BlockDot(byte* q, byte* x)
    {
        var even = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, Vector256.Load(q), Broadcast4(x));
        var odd = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, Vector256.Load(q + 32), Broadcast4(x + 4));
        for (int i = 2; i < 8; i += 2)
        {
            even = AvxVnni.MultiplyWideningAndAdd(even, Vector256.Load(q + 32 * i), Broadcast4(x + 4 * i));
            odd = AvxVnni.MultiplyWideningAndAdd(odd, Vector256.Load(q + 32 * i + 32), Broadcast4(x + 4 * i + 4));
        }
        return even + odd;
    }

    /// <summary>The decode kernel: one token, 8 rows in the 8 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot8Vnni(byte* group, byte* act, float* dx, int* c, int nb, float* y)
    {
        Vector256<float> acc = default;
        for (int b = 0; b < nb; b++, group += GroupSize, act += ActBlock)
        {
            var g = (BlockQ8_0x8*)group;
            var isum = BlockDot(g->Qs, act + 2) - Vector256.Create(c[b]);
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(isum), Fp16.Load8(g->D) * Vector256.Create(dx[b]), acc);
        }
        acc.Store(y);
    }

    /// <summary>The prompt tile: 8 rows x 4 tokens (token t's activations at act + t * actStride, its scales and sums at
    /// dx + t * nb, c + t * nb, its 8 results at y + t * yStride). Each 32 bytes of quants is loaded once for the four
    /// tokens; per (row, token) the arithmetic is <see cref="Dot8Vnni"/>'s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot8x4Vnni(byte* group, byte* act, int actStride, float* dx, int* c, int nb, float* y, int yStride)
    {
        Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        byte* x0 = act + 2, x1 = act + actStride + 2, x2 = act + 2 * actStride + 2, x3 = act + 3 * actStride + 2;
        for (int b = 0; b < nb; b++, group += GroupSize, x0 += ActBlock, x1 += ActBlock, x2 += ActBlock, x3 += ActBlock)
        {
            var g = (BlockQ8_0x8*)group;
            byte* q = g->Qs;
            Vector256<int> e0 = default, e1 = default, e2 = default, e3 = default;
            Vector256<int> o0 = default, o1 = default, o2 = default, o3 = default;
            for (int i = 0; i < 8; i += 2)
            {
                var w = Vector256.Load(q + 32 * i);
                e0 = AvxVnni.MultiplyWideningAndAdd(e0, w, Broadcast4(x0 + 4 * i));
                e1 = AvxVnni.MultiplyWideningAndAdd(e1, w, Broadcast4(x1 + 4 * i));
                e2 = AvxVnni.MultiplyWideningAndAdd(e2, w, Broadcast4(x2 + 4 * i));
                e3 = AvxVnni.MultiplyWideningAndAdd(e3, w, Broadcast4(x3 + 4 * i));
                w = Vector256.Load(q + 32 * i + 32);
                o0 = AvxVnni.MultiplyWideningAndAdd(o0, w, Broadcast4(x0 + 4 * i + 4));
                o1 = AvxVnni.MultiplyWideningAndAdd(o1, w, Broadcast4(x1 + 4 * i + 4));
                o2 = AvxVnni.MultiplyWideningAndAdd(o2, w, Broadcast4(x2 + 4 * i + 4));
                o3 = AvxVnni.MultiplyWideningAndAdd(o3, w, Broadcast4(x3 + 4 * i + 4));
            }
            var d = Fp16.Load8(g->D);
            acc0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(e0 + o0 - Vector256.Create(c[b])), d * Vector256.Create(dx[b]), acc0);
            acc1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(e1 + o1 - Vector256.Create(c[nb + b])), d * Vector256.Create(dx[nb + b]), acc1);
            acc2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(e2 + o2 - Vector256.Create(c[2 * nb + b])), d * Vector256.Create(dx[2 * nb + b]), acc2);
            acc3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(e3 + o3 - Vector256.Create(c[3 * nb + b])), d * Vector256.Create(dx[3 * nb + b]), acc3);
        }
        acc0.Store(y);
        acc1.Store(y + yStride);
        acc2.Store(y + 2 * yStride);
        acc3.Store(y + 3 * yStride);
    }
}
