using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Quantization.Repacked;

/// <summary>
/// BF16 matrices in groups of 8 rows: a group block holds 32 consecutive bfloat16 of each of the 8 rows (row j's at
/// j * 32 within the block), a group's blocks consecutive (group g, block b at (g * k/32 + b) * 512 bytes).
/// Activations are BF16Format's (bfloat16).
///
/// Why: as for <see cref="F16x8"/>, a row's dot is one 16-lane accumulator, a chain of two dependent fused
/// multiply-adds per 32 elements; eight rows side by side, in one stream, fill the pipeline. Every kernel gives a row
/// exactly BF16Format's DotCore bits (the same products in the same order: per 32-bit lane the odd element, then
/// the even one, as vdpbf16ps), so results do not depend on whether a matrix was repacked.
/// </summary>
internal sealed unsafe class BF16x8 : RepackedMatrix<BF16x8>, IRepackedLayout
{
    BF16x8() { }

    /// <summary>Elements of one row in a group block.</summary>
    public const int Width = 32;
    const int RowBlockBytes = Width * sizeof(ushort);
    const int GroupBlockBytes = 8 * RowBlockBytes;

    static int IRepackedLayout.BlockWidth => Width;
    static int IRepackedLayout.GroupBlockBytes => GroupBlockBytes;
    static RowFormat IRepackedLayout.Source => BF16Format.Instance;
    // Eight rows' accumulators need AVX-512's 32 registers.
    static bool IRepackedLayout.FasterHere => Simd.Avx2Fma && Simd.Avx512;

    static void IRepackedLayout.PackBlock(byte* src, long rowBytes, int block, byte* dst)
    {
        for (int r = 0; r < 8; r++)
            Vector512.Load(src + r * rowBytes + block * RowBlockBytes).Store(dst + r * RowBlockBytes);
    }

    static void IRepackedLayout.DequantizeBlock(byte* groupBlock, int row, float* dst)
    {
        var h = (ushort*)(groupBlock + row * RowBlockBytes);
        for (int i = 0; i < Width; i++) dst[i] = Fp16.BF16ToSingle(h[i]);
    }

    static void IRepackedLayout.DotReference(byte* group, byte* act, int nb, float* y) => DotReference(group, (ushort*)act, nb, y);
    static void IRepackedLayout.DotGroup(byte* group, byte* act, int nb, float* y) => MatVec(group, nb * Width, act, y, 0, 1);
    static void IRepackedLayout.MatVec(byte* packed, int k, byte* act, float* y, int groupStart, int groupEnd) => MatVec(packed, k, act, y, groupStart, groupEnd);
    static void IRepackedLayout.MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd) =>
        MatMul(packed, k, acts, actStride, tokens, y, yStride, groupStart, groupEnd);

    /// <summary>The 8 rows of a group times one token in scalar steps that spell out the golden order: lane j of a row
    /// takes, per block, element 2j + 1 then element 2j of its first 16 (lanes 0-7) or next 16 (lanes 8-15) pairs,
    /// each a fused multiply-add (a product of two bfloat16 is exact in float); then the 16 lanes are added as
    /// _mm512_reduce_add_ps adds them.</summary>
    public static void DotReference(byte* group, ushort* x, int nb, float* y)
    {
        var lanes = stackalloc float[16];
        for (int r = 0; r < 8; r++)
        {
            for (int j = 0; j < 16; j++) lanes[j] = 0;
            for (int b = 0; b < nb; b++)
            {
                var w = (ushort*)(group + (long)b * GroupBlockBytes + r * RowBlockBytes);
                var a = x + b * Width;
                for (int j = 0; j < 16; j++)
                {
                    lanes[j] = MathF.FusedMultiplyAdd(Fp16.BF16ToSingle(w[2 * j + 1]), Fp16.BF16ToSingle(a[2 * j + 1]), lanes[j]);
                    lanes[j] = MathF.FusedMultiplyAdd(Fp16.BF16ToSingle(w[2 * j]), Fp16.BF16ToSingle(a[2 * j]), lanes[j]);
                }
            }
            y[r] = Simd.HSum(Vector512.Load(lanes));
        }
    }

    /// <summary>y[8g + j] = row 8g + j . x for the groups [groupStart, groupEnd).</summary>
    public static void MatVec(byte* packed, int k, byte* act, float* y, int groupStart, int groupEnd)
    {
        int nb = k / Width;
        long groupBytes = (long)nb * GroupBlockBytes;
        for (int g = groupStart; g < groupEnd; g++)
        {
            if (Simd.Avx512) Dot8Avx512(packed + g * groupBytes, (uint*)act, nb, y + 8 * g);
            else DotReference(packed + g * groupBytes, (ushort*)act, nb, y + 8 * g);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot8Avx512(byte* group, uint* x, int nb, float* y)
    {
        var w = (uint*)group;
        var high = Vector512.Create(0xFFFF0000u);
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
        for (int b = 0; b < nb; b++, w += 8 * 16)
        {
            var a = Vector512.Load(x + b * 16);
            Vector512<float> odd = (a & high).AsSingle(), even = (a << 16).AsSingle();
            c0 = Step(w, odd, even, c0);
            c1 = Step(w + 16, odd, even, c1);
            c2 = Step(w + 32, odd, even, c2);
            c3 = Step(w + 48, odd, even, c3);
            c4 = Step(w + 64, odd, even, c4);
            c5 = Step(w + 80, odd, even, c5);
            c6 = Step(w + 96, odd, even, c6);
            c7 = Step(w + 112, odd, even, c7);
        }
        y[0] = Simd.HSum(c0); y[1] = Simd.HSum(c1); y[2] = Simd.HSum(c2); y[3] = Simd.HSum(c3);
        y[4] = Simd.HSum(c4); y[5] = Simd.HSum(c5); y[6] = Simd.HSum(c6); y[7] = Simd.HSum(c7);
    }

    /// <summary>One row's 32 weights at w (16 pairs) times the split activations: acc + odd products, then + even.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Step(uint* w, Vector512<float> xOdd, Vector512<float> xEven, Vector512<float> acc)
    {
        var v = Vector512.Load(w);
        acc = Avx512F.FusedMultiplyAdd((v & Vector512.Create(0xFFFF0000u)).AsSingle(), xOdd, acc);
        return Avx512F.FusedMultiplyAdd((v << 16).AsSingle(), xEven, acc);
    }

    [ThreadStatic] static byte[]? t_rows;

    /// <summary>y[t * yStride + 8g + j] for every token and the groups [groupStart, groupEnd): each group's 8 rows are
    /// copied back to rows and go through BF16Format's prompt kernels (its 4 x 4 tile), as the rows of an unrepacked
    /// matrix do.</summary>
    public static void MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd)
    {
        int nb = k / Width;
        long groupBytes = (long)nb * GroupBlockBytes;
        if (!Simd.Avx512)
        {
            // Never repacked without AVX-512 (RepackedFormats); the tests still run the layout there, in its order.
            for (int t = 0; t < tokens; t++)
                for (int g = groupStart; g < groupEnd; g++)
                    DotReference(packed + g * groupBytes, (ushort*)(acts + (long)t * actStride), nb, y + (long)t * yStride + 8 * g);
            return;
        }
        long rowBytes = (long)k * sizeof(ushort);
        var rows = t_rows is { } r && r.Length >= 8 * rowBytes ? r : t_rows = GC.AllocateUninitializedArray<byte>(checked((int)(8 * rowBytes)), pinned: true);
        fixed (byte* dst = rows)
            for (int g = groupStart; g < groupEnd; g++)
            {
                byte* group = packed + g * groupBytes;
                for (int b = 0; b < nb; b++)
                    for (int i = 0; i < 8; i++)
                        Buffer.MemoryCopy(group + (long)b * GroupBlockBytes + i * RowBlockBytes, dst + i * rowBytes + b * RowBlockBytes, RowBlockBytes, RowBlockBytes);
                BF16Format.Instance.MatMulCore(dst, rowBytes, k, acts, actStride, tokens, y + 8 * g, yStride, 0, 8);
            }
    }
}
