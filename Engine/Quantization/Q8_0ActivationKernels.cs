using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Formats;

namespace Engine.Quantization;

/// <summary>How one family of weight blocks looks to the shared kernel: 32 weights with one f16 scale, which
/// decode to 32 signed bytes. Implemented by small structs so the JIT specializes the kernel per format.</summary>
internal unsafe interface IByteBlockWeights
{
    static abstract int BlockBytes { get; }
    /// <summary>The block's 32 weights as signed bytes (before the scale).</summary>
    static abstract Vector256<sbyte> Quants(byte* block);
    static abstract float Scale(byte* block);
}

/// <summary>A format whose blocks hold 32 weights that decode to signed bytes and meet Q8_0 activations (Q8_0,
/// Q4_0, Q5_0, IQ4_NL). With AVX2 all of them run <see cref="Q8_0ActivationKernels"/>, described to it by
/// TWeights; without AVX2 each keeps its own portable dot (<see cref="DotWithoutAvx2"/>).</summary>
internal abstract unsafe class ByteBlockFormat<TWeights> : RowFormat where TWeights : struct, IByteBlockWeights
{
    const int BlockWeights = 32;

    private protected ByteBlockFormat(GgmlType type) : base(type, GgmlType.Q8_0) { }

    private protected sealed override void QuantizeActivationsCore(float* x, byte* dst, int k) =>
        Q8_0Format.QuantizeActivations(x, (BlockQ8_0*)dst, k);

    private protected sealed override float DotCore(byte* row, byte* act, int k) =>
        Simd.Avx2Fma ? Q8_0ActivationKernels.Dot<TWeights>(row, act, k / BlockWeights) : DotWithoutAvx2(row, act, k);

    /// <summary>The dot on machines without AVX2 and FMA: the scalar reference unless the format has a portable
    /// SIMD path.</summary>
    private protected virtual float DotWithoutAvx2(byte* row, byte* act, int k) => DotReferenceCore(row, act, k);

    internal sealed override void MatVecCore(byte* weights, long rowBytes, int k, byte* act, float* y, int rowStart, int rowEnd)
    {
        if (Simd.Avx2Fma) Q8_0ActivationKernels.MatVec<TWeights>(weights, rowBytes, k / BlockWeights, act, y, rowStart, rowEnd);
        else base.MatVecCore(weights, rowBytes, k, act, y, rowStart, rowEnd);
    }

    internal sealed override void MatMulCore(byte* weights, long rowBytes, int k, byte* acts, int actStride, int tokens,
        float* y, int yStride, int rowStart, int rowEnd)
    {
        if (Simd.Avx2Fma) Q8_0ActivationKernels.MatMul<TWeights>(weights, rowBytes, k / BlockWeights, acts, actStride, tokens, y, yStride, rowStart, rowEnd);
        else base.MatMulCore(weights, rowBytes, k, acts, actStride, tokens, y, yStride, rowStart, rowEnd);
    }
}

/// <summary>The AVX2 dot kernel of every format whose blocks hold 32 weights and meet Q8_0 activations (Q8_0,
/// Q4_0, Q5_0, IQ4_NL). Per (row, token) it runs llama.cpp's order: one accumulator over the blocks,
/// acc += (d_w * d_x) * float(int dot of the block), then ggml's horizontal sum. For a batch of tokens it
/// decodes each weight block once and reuses it for up to four tokens, which is what makes prompt processing
/// cheaper per token than decoding; every result keeps exactly the bits of the one-token call.</summary>
internal static unsafe class Q8_0ActivationKernels
{
    const int ActivationBlockBytes = 34; // block_q8_0: f16 scale + 32 int8

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float ActivationScale(byte* block) => Fp16.ToSingle(*(ushort*)block);

    /// <summary>One row times one token.</summary>
    public static float Dot<TWeights>(byte* row, byte* act, int blocks) where TWeights : struct, IByteBlockWeights
    {
        Vector256<float> acc = default;
        for (int b = 0; b < blocks; b++, row += TWeights.BlockBytes, act += ActivationBlockBytes)
        {
            var w = TWeights.Quants(row);
            var product = Simd.DotI8I8(w, Vector256.Load((sbyte*)(act + 2)));
            acc = Fma.MultiplyAdd(Vector256.Create(TWeights.Scale(row) * ActivationScale(act)), Avx.ConvertToVector256Single(product), acc);
        }
        return Simd.HSum(acc);
    }

    /// <summary>Rows [rowStart, rowEnd) times one token (decode). The token's f16 block scales are converted once
    /// for the whole range instead of once per row.</summary>
    public static void MatVec<TWeights>(byte* weights, long rowBytes, int blocks, byte* act, float* y, int rowStart, int rowEnd)
        where TWeights : struct, IByteBlockWeights
    {
        const int MaxStackBlocks = 8192;
        if (blocks > MaxStackBlocks)
        {
            for (int r = rowStart; r < rowEnd; r++) y[r] = Dot<TWeights>(weights + r * rowBytes, act, blocks);
            return;
        }
        float* scales = stackalloc float[blocks];
        for (int b = 0; b < blocks; b++) scales[b] = ActivationScale(act + b * ActivationBlockBytes);
        for (int r = rowStart; r < rowEnd; r++)
        {
            byte* row = weights + r * rowBytes;
            byte* quants = act + 2;
            Vector256<float> acc = default;
            for (int b = 0; b < blocks; b++, row += TWeights.BlockBytes, quants += ActivationBlockBytes)
            {
                var product = Simd.DotI8I8(TWeights.Quants(row), Vector256.Load((sbyte*)quants));
                acc = Fma.MultiplyAdd(Vector256.Create(TWeights.Scale(row) * scales[b]), Avx.ConvertToVector256Single(product), acc);
            }
            y[r] = Simd.HSum(acc);
        }
    }

    /// <summary>Rows [rowStart, rowEnd) times every token: y[t * yStride + r]. Tokens go in groups of four whose
    /// activation scales are converted from f16 once per group (not once per row), then every row of the range
    /// passes over the group.</summary>
    public static void MatMul<TWeights>(byte* weights, long rowBytes, int blocks, byte* acts, int actStride, int tokens,
        float* y, int yStride, int rowStart, int rowEnd) where TWeights : struct, IByteBlockWeights
    {
        if (AvxVnni.IsSupported && tokens >= 4 && rowEnd - rowStart >= 4)
        {
            for (int chunk = rowStart; chunk < rowEnd; chunk += TiledRows)
                MatMulTiled<TWeights>(weights, rowBytes, blocks, acts, actStride, tokens, y, yStride, chunk, Math.Min(rowEnd, chunk + TiledRows));
            return;
        }
        MatMulRowByRow<TWeights>(weights, rowBytes, blocks, acts, actStride, tokens, y, yStride, rowStart, rowEnd);
    }

    /// <summary>Without VNNI: a row times four tokens at a time, the weight block decoded once for the four.</summary>
    static void MatMulRowByRow<TWeights>(byte* weights, long rowBytes, int blocks, byte* acts, int actStride, int tokens,
        float* y, int yStride, int rowStart, int rowEnd) where TWeights : struct, IByteBlockWeights
    {
        const int MaxStackBlocks = 4096; // 64 KiB of scales; longer rows convert per row instead
        int t = 0;
        if (blocks <= MaxStackBlocks)
        {
            float* scales = stackalloc float[4 * blocks];
            for (; t + 4 <= tokens; t += 4)
            {
                byte* group = acts + (long)t * actStride;
                for (int i = 0; i < 4; i++)
                    for (int b = 0; b < blocks; b++)
                        scales[i * blocks + b] = ActivationScale(group + (long)i * actStride + b * ActivationBlockBytes);
                for (int r = rowStart; r < rowEnd; r++)
                    Dot4<TWeights>(weights + r * rowBytes, group, actStride, scales, blocks, y + (long)t * yStride + r, yStride);
            }
        }
        for (; t < tokens; t++)
            MatVec<TWeights>(weights, rowBytes, blocks, acts + (long)t * actStride, y + (long)t * yStride, rowStart, rowEnd);
    }

    /// <summary>One row times four tokens: the weight block is decoded, and its absolute value taken, once.
    /// scales[i * blocks + b] is token i's scale of block b.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot4<TWeights>(byte* row, byte* act, int actStride, float* scales, int blocks, float* y, int yStride)
        where TWeights : struct, IByteBlockWeights
    {
        Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        byte* a0 = act + 2, a1 = act + actStride + 2, a2 = act + 2 * actStride + 2, a3 = act + 3 * actStride + 2;
        float* s0 = scales, s1 = scales + blocks, s2 = scales + 2 * blocks, s3 = scales + 3 * blocks;
        for (int b = 0; b < blocks; b++, row += TWeights.BlockBytes)
        {
            var w = TWeights.Quants(row);
            var magnitude = Avx2.Abs(w);
            float dw = TWeights.Scale(row);
            int o = b * ActivationBlockBytes;
            acc0 = Step(magnitude, w, dw * s0[b], a0 + o, acc0);
            acc1 = Step(magnitude, w, dw * s1[b], a1 + o, acc1);
            acc2 = Step(magnitude, w, dw * s2[b], a2 + o, acc2);
            acc3 = Step(magnitude, w, dw * s3[b], a3 + o, acc3);
        }
        y[0] = Simd.HSum(acc0);
        y[yStride] = Simd.HSum(acc1);
        y[2 * yStride] = Simd.HSum(acc2);
        y[3 * yStride] = Simd.HSum(acc3);
    }

    /// <summary>Rows the tiled kernel prepares at once (the matmul hands out row tiles of 16).</summary>
    const int TiledRows = 16;

    /// <summary>Per-thread scratch of the tiled kernel, grown to the longest row once and pinned.</summary>
    [ThreadStatic] static byte[]? t_tileScratch;

    /// <summary>The VNNI prompt kernel: tiles of 4 rows x 4 tokens, 16 accumulators in registers, so each weight
    /// block is loaded once for four tokens and each activation block once for four rows (tinyBLAS's scheme).
    /// vpdpbusd multiplies unsigned by signed bytes; instead of the sign trick, which costs an instruction per
    /// (row, token) pair, the activations are shifted to unsigned (x + 128, one XOR per token and block) and the
    /// excess 128 * (sum of the weights) is taken off by starting each lane's sum at minus that amount, computed
    /// once per row and block. Every lane's integer is the same w . x as in <see cref="Dot{TWeights}"/>, and the
    /// scale products d_w * d_x are rounded to float the same way, so each (row, token) keeps its one-token bits.
    /// Rows [rowStart, rowEnd) are at most <see cref="TiledRows"/>; whole groups of four run tiled, the rest of
    /// the rows go a row times four tokens, the tokens left after the groups of four one at a time.
    ///
    /// Before the tokens, each group of four rows is laid out for the tile once: per block the four rows' decoded
    /// signed bytes side by side (128 bytes), and beside them the four rows' starting sums (4 x 8 ints). So a block's
    /// weights are decoded once for all the tokens of the batch (not once per four tokens: Q4_0, Q5_0 and IQ4_NL
    /// decode in several instructions). The four tokens' quants are shifted to unsigned once per group of tokens, a
    /// block's four side by side, so the tile walks sequential streams with one pointer each instead of twelve pointers
    /// (measured: the JIT had run out of registers and reloaded pointers and accumulators from the stack).</summary>
    static void MatMulTiled<TWeights>(byte* weights, long rowBytes, int blocks, byte* acts, int actStride, int tokens,
        float* y, int yStride, int rowStart, int rowEnd) where TWeights : struct, IByteBlockWeights
    {
        int tiledRows = (rowEnd - rowStart) & ~3;
        // Scratch: per tiled row and block the decoded quants (32 bytes), the lane offsets (8 ints) and the row's
        // scale; the four tokens' scales by token and by block; per block the 16 scale products of a tile.
        long quantBytes = (long)tiledRows * blocks * 32, offsetBytes = quantBytes, rowScaleBytes = (long)tiledRows * blocks * 4;
        long tokenScaleBytes = (long)blocks * 16, productBytes = (long)blocks * 64, biasedBytes = (long)blocks * 128;
        long need = quantBytes + offsetBytes + rowScaleBytes + 2 * tokenScaleBytes + productBytes + biasedBytes + 64;
        if (need > int.MaxValue / 2)
        {
            MatMulRowByRow<TWeights>(weights, rowBytes, blocks, acts, actStride, tokens, y, yStride, rowStart, rowEnd);
            return;
        }
        var scratch = t_tileScratch is { } s && s.Length >= need ? s : t_tileScratch = GC.AllocateUninitializedArray<byte>((int)need, pinned: true);
        byte* basePtr = (byte*)(((nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(scratch)) + 63) & ~(nint)63);
        sbyte* quants = (sbyte*)basePtr;                                                // [row tile][block][row i][32]
        int* offsets = (int*)(basePtr + quantBytes);                                   // [row tile][block][row i][lane]
        float* rowScales = (float*)(basePtr + quantBytes + offsetBytes);               // [row][block]
        float* tokenScales = (float*)(basePtr + quantBytes + offsetBytes + rowScaleBytes); // [token i][block]
        float* tokenScalesByBlock = tokenScales + 4 * blocks;                          // [block][token i]
        float* products = tokenScalesByBlock + 4 * blocks;                             // [block][row i][token j]
        byte* biased = (byte*)(products + 16 * blocks);                                // [block][token j][32]

        var bias = Vector256.Create((byte)0x80);
        for (int i = 0; i < tiledRows; i++)
        {
            byte* row = weights + (rowStart + i) * rowBytes;
            sbyte* rowQuants = quants + (long)(i / 4) * blocks * 128 + (i % 4) * 32;
            int* rowOffsets = offsets + (long)(i / 4) * blocks * 32 + (i % 4) * 8;
            float* scales = rowScales + (long)i * blocks;
            for (int b = 0; b < blocks; b++, row += TWeights.BlockBytes)
            {
                var w = TWeights.Quants(row);
                w.Store(rowQuants + b * 128);
                // -128 * (sum of each lane's four weights): the lane's sum of (x + 128) * w starts there.
                (Vector256<int>.Zero - AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, bias, w)).Store(rowOffsets + b * 32);
                scales[b] = TWeights.Scale(row);
            }
        }

        int t = 0;
        for (; t + 4 <= tokens; t += 4)
        {
            byte* group = acts + (long)t * actStride;
            for (int i = 0; i < 4; i++) ActivationScales(group + (long)i * actStride, blocks, tokenScales + i * blocks);
            float* t0 = tokenScales, t1 = tokenScales + blocks, t2 = tokenScales + 2 * blocks, t3 = tokenScales + 3 * blocks;
            for (int b = 0; b < blocks; b++) Vector128.Create(t0[b], t1[b], t2[b], t3[b]).Store(tokenScalesByBlock + b * 4);
            // The four tokens' quants shifted to unsigned once for all row tiles, a block's four side by side.
            for (int b = 0; b < blocks; b++)
                for (int j = 0; j < 4; j++)
                    (Vector256.Load(group + (long)j * actStride + b * ActivationBlockBytes + 2) ^ bias).Store(biased + b * 128 + j * 32);
            float* yt = y + (long)t * yStride;
            for (int r = 0; r < tiledRows; r += 4)
            {
                // Four 4-lane products per block: narrow stores, so the tile's scalar broadcast loads forward from them.
                float* scales = rowScales + (long)r * blocks;
                for (int b = 0; b < blocks; b++)
                {
                    var tokenScale = Vector128.Load(tokenScalesByBlock + b * 4);
                    for (int i = 0; i < 4; i++)
                        (Vector128.Create(scales[i * blocks + b]) * tokenScale).Store(products + b * 16 + i * 4);
                }
                Tile4x4(quants + (long)(r / 4) * blocks * 128, offsets + (long)(r / 4) * blocks * 32, biased, blocks,
                    products, yt + rowStart + r, yStride);
            }
            for (int r = rowStart + tiledRows; r < rowEnd; r++)
                Dot4<TWeights>(weights + r * rowBytes, group, actStride, tokenScales, blocks, yt + r, yStride);
        }
        for (; t < tokens; t++)
            MatVec<TWeights>(weights, rowBytes, blocks, acts + (long)t * actStride, y + (long)t * yStride, rowStart, rowEnd);
    }

    /// <summary>The f16 scales of a token's activation blocks as floats, eight at a time: the 16-bit scales sit
    /// 34 bytes apart, so one gather fetches eight of them (with two quant bytes each, masked off) for the
    /// exact vector conversion.</summary>
    static void ActivationScales(byte* act, int blocks, float* scales)
    {
        int b = 0;
        if (Avx2.IsSupported)
        {
            var index = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7) * ActivationBlockBytes;
            for (; b + 8 <= blocks; b += 8)
            {
                var halves = Avx2.GatherVector256((int*)(act + b * ActivationBlockBytes), index, 1).AsUInt32() & Vector256.Create(0xFFFFu);
                Fp16.ToSingle(halves).Store(scales + b);
            }
        }
        for (; b < blocks; b++) scales[b] = ActivationScale(act + b * ActivationBlockBytes);
    }

    /// <summary>4 rows x 4 tokens (see <see cref="MatMulTiled{TWeights}"/>): quants[b * 128 + i * 32] are row i's
    /// signed bytes of block b, offsets[b * 32 + i * 8] its lane offsets, biased[b * 128 + j * 32] token j's quants
    /// plus 128, products[b * 16 + i * 4 + j] the scale of row i and token j in block b.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Tile4x4(sbyte* quants, int* offsets, byte* biased, int blocks, float* products, float* y, int yStride)
    {
        Vector256<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector256<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector256<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector256<float> c30 = default, c31 = default, c32 = default, c33 = default;
        for (int b = 0; b < blocks; b++, quants += 128, offsets += 32, products += 16, biased += 128)
        {
            var x0 = Vector256.Load(biased);
            var x1 = Vector256.Load(biased + 32);
            var x2 = Vector256.Load(biased + 64);
            var x3 = Vector256.Load(biased + 96);
            var w = Vector256.Load(quants);
            var o = Vector256.Load(offsets);
            c00 = Pair(c00, o, x0, w, products[0]); c01 = Pair(c01, o, x1, w, products[1]);
            c02 = Pair(c02, o, x2, w, products[2]); c03 = Pair(c03, o, x3, w, products[3]);
            w = Vector256.Load(quants + 32);
            o = Vector256.Load(offsets + 8);
            c10 = Pair(c10, o, x0, w, products[4]); c11 = Pair(c11, o, x1, w, products[5]);
            c12 = Pair(c12, o, x2, w, products[6]); c13 = Pair(c13, o, x3, w, products[7]);
            w = Vector256.Load(quants + 64);
            o = Vector256.Load(offsets + 16);
            c20 = Pair(c20, o, x0, w, products[8]); c21 = Pair(c21, o, x1, w, products[9]);
            c22 = Pair(c22, o, x2, w, products[10]); c23 = Pair(c23, o, x3, w, products[11]);
            w = Vector256.Load(quants + 96);
            o = Vector256.Load(offsets + 24);
            c30 = Pair(c30, o, x0, w, products[12]); c31 = Pair(c31, o, x1, w, products[13]);
            c32 = Pair(c32, o, x2, w, products[14]); c33 = Pair(c33, o, x3, w, products[15]);
        }
        y[0] = Simd.HSum(c00); y[1] = Simd.HSum(c10); y[2] = Simd.HSum(c20); y[3] = Simd.HSum(c30);
        y += yStride;
        y[0] = Simd.HSum(c01); y[1] = Simd.HSum(c11); y[2] = Simd.HSum(c21); y[3] = Simd.HSum(c31);
        y += yStride;
        y[0] = Simd.HSum(c02); y[1] = Simd.HSum(c12); y[2] = Simd.HSum(c22); y[3] = Simd.HSum(c32);
        y += yStride;
        y[0] = Simd.HSum(c03); y[1] = Simd.HSum(c13); y[2] = Simd.HSum(c23); y[3] = Simd.HSum(c33);
    }

    /// <summary>acc += scale * float(the lane sums of (x + 128) * w, started at the row's offsets).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Pair(Vector256<float> acc, Vector256<int> offsets, Vector256<byte> biasedX, Vector256<sbyte> w, float scale) =>
        Fma.MultiplyAdd(Vector256.Create(scale), Avx.ConvertToVector256Single(AvxVnni.MultiplyWideningAndAdd(offsets, biasedX, w)), acc);

    /// <summary>acc += scale * float(w . x), with w . x = |w| . sign(x, w) as Simd.DotI8I8 computes it and
    /// scale = d_w * d_x rounded to float first, as in the one-token dot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Step(Vector256<byte> magnitude, Vector256<sbyte> w, float scale, byte* actQuants, Vector256<float> acc)
    {
        var product = Simd.DotU8I8(magnitude, Avx2.Sign(Vector256.Load((sbyte*)actQuants), w));
        return Fma.MultiplyAdd(Vector256.Create(scale), Avx.ConvertToVector256Single(product), acc);
    }
}
