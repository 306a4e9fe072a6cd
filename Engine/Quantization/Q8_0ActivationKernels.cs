using System.Runtime.CompilerServices;
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
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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

    /// <summary>acc += scale * float(w . x), with w . x = |w| . sign(x, w) as Simd.DotI8I8 computes it and
    /// scale = d_w * d_x rounded to float first, as in the one-token dot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Step(Vector256<byte> magnitude, Vector256<sbyte> w, float scale, byte* actQuants, Vector256<float> acc)
    {
        var product = Simd.DotU8I8(magnitude, Avx2.Sign(Vector256.Load((sbyte*)actQuants), w));
        return Fma.MultiplyAdd(Vector256.Create(scale), Avx.ConvertToVector256Single(product), acc);
    }
}
