using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Quantization.Repacked;

/// <summary>
/// F16 matrices in groups of 8 rows: a group block holds 16 consecutive halves of each of the 8 rows (row j's at
/// j * 16 within the block), a group's blocks consecutive (group g, block b at (g * k/16 + b) * 256 bytes).
/// Activations are F16Format's (floats rounded to half).
///
/// Why: a decode dot keeps one 16-lane accumulator per row (the golden order, see F16Format's DotCore), so a row
/// alone waits on its chain of dependent fused multiply-adds; eight rows side by side fill the pipeline. Reading
/// eight rows of the original layout at once would be eight short streams, which the hardware prefetcher follows
/// badly (measured: half the speed of one row at a time on the 151936 x 1536 embedding); here the eight rows are one
/// stream. Every kernel gives a row exactly DotCore's bits (the same products summed in the same order), so results
/// do not depend on whether a matrix was repacked or on the batch a token is in.
/// </summary>
internal sealed unsafe class F16x8 : RepackedMatrix<F16x8>, IRepackedLayout
{
    F16x8() { }

    /// <summary>Halves of one row in a group block.</summary>
    public const int Width = 16;
    const int GroupBlockBytes = 8 * Width * sizeof(ushort);

    static int IRepackedLayout.BlockWidth => Width;
    static int IRepackedLayout.GroupBlockBytes => GroupBlockBytes;
    static RowFormat IRepackedLayout.Source => F16Format.Instance;
    // Eight rows' accumulators need AVX-512's 32 registers, and the branch-free conversion subnormal operands at full speed.
    static bool IRepackedLayout.FasterHere => Simd.Avx2Fma && Simd.Avx512 && !Fp16.SubnormalOperandsAreSlow;

    static void IRepackedLayout.PackBlock(byte* src, long rowBytes, int block, byte* dst)
    {
        for (int r = 0; r < 8; r++)
            Vector256.Load(src + r * rowBytes + block * Width * sizeof(ushort)).Store(dst + r * Width * sizeof(ushort));
    }

    static void IRepackedLayout.DequantizeBlock(byte* groupBlock, int row, float* dst)
    {
        var h = (ushort*)groupBlock + row * Width;
        for (int i = 0; i < Width; i++) dst[i] = Fp16.ToSingle(h[i]);
    }

    static void IRepackedLayout.DotReference(byte* group, byte* act, int nb, float* y) => DotReference(group, (float*)act, nb, y);
    static void IRepackedLayout.DotGroup(byte* group, byte* act, int nb, float* y) => MatVec(group, nb * Width, act, y, 0, 1);
    static void IRepackedLayout.MatVec(byte* packed, int k, byte* act, float* y, int groupStart, int groupEnd) => MatVec(packed, k, act, y, groupStart, groupEnd);
    static void IRepackedLayout.MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd) =>
        MatMul(packed, k, acts, actStride, tokens, y, yStride, groupStart, groupEnd);

    /// <summary>The 8 rows of a group times one token, in scalar steps that spell out the golden order: lane j of a row
    /// sums its products of elements 16b + j, b = 0, 1, ..., each a fused multiply-add; then the 16 lanes are added as
    /// _mm512_reduce_add_ps adds them (<see cref="Simd.HSum(Vector512{float})"/>).</summary>
    public static void DotReference(byte* group, float* x, int nb, float* y)
    {
        var lanes = stackalloc float[Width];
        for (int r = 0; r < 8; r++)
        {
            for (int j = 0; j < Width; j++) lanes[j] = 0;
            for (int b = 0; b < nb; b++)
            {
                var h = (ushort*)(group + (long)b * GroupBlockBytes) + r * Width;
                for (int j = 0; j < Width; j++) lanes[j] = MathF.FusedMultiplyAdd(Fp16.ToSingle(h[j]), x[b * Width + j], lanes[j]);
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
            if (Simd.Avx512) Dot8Avx512(packed + g * groupBytes, (float*)act, nb, y + 8 * g);
            else DotReference(packed + g * groupBytes, (float*)act, nb, y + 8 * g);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    static void Dot8Avx512(byte* group, float* x, int nb, float* y)
    {
        var h = (ushort*)group;
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
        for (int b = 0; b < nb; b++, h += 8 * Width)
        {
            var a = Vector512.Load(x + b * Width);
            c0 = Avx512F.FusedMultiplyAdd(Fp16.Load16AnyAvx512(h), a, c0);
            c1 = Avx512F.FusedMultiplyAdd(Fp16.Load16AnyAvx512(h + Width), a, c1);
            c2 = Avx512F.FusedMultiplyAdd(Fp16.Load16AnyAvx512(h + 2 * Width), a, c2);
            c3 = Avx512F.FusedMultiplyAdd(Fp16.Load16AnyAvx512(h + 3 * Width), a, c3);
            c4 = Avx512F.FusedMultiplyAdd(Fp16.Load16AnyAvx512(h + 4 * Width), a, c4);
            c5 = Avx512F.FusedMultiplyAdd(Fp16.Load16AnyAvx512(h + 5 * Width), a, c5);
            c6 = Avx512F.FusedMultiplyAdd(Fp16.Load16AnyAvx512(h + 6 * Width), a, c6);
            c7 = Avx512F.FusedMultiplyAdd(Fp16.Load16AnyAvx512(h + 7 * Width), a, c7);
        }
        y[0] = Simd.HSum(c0); y[1] = Simd.HSum(c1); y[2] = Simd.HSum(c2); y[3] = Simd.HSum(c3);
        y[4] = Simd.HSum(c4); y[5] = Simd.HSum(c5); y[6] = Simd.HSum(c6); y[7] = Simd.HSum(c7);
    }

    /// <summary>Groups converted to float at once by the prompt form (16 rows, as F16Format's prompt kernel).</summary>
    const int ConvertedGroups = 2;

    [ThreadStatic] static float[]? t_convertedRows;

    /// <summary>y[t * yStride + 8g + j] for every token and the groups [groupStart, groupEnd): two groups at a time are
    /// converted to float rows (exactly) and go through F16Format's 4 x 4 tile, as the rows of an unrepacked matrix do.</summary>
    public static void MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd)
    {
        int nb = k / Width;
        long groupBytes = (long)nb * GroupBlockBytes;
        if (!Simd.Avx512)
        {
            for (int t = 0; t < tokens; t++)
                for (int g = groupStart; g < groupEnd; g++)
                    DotReference(packed + g * groupBytes, (float*)(acts + (long)t * actStride), nb, y + (long)t * yStride + 8 * g);
            return;
        }
        long need = (long)ConvertedGroups * 8 * k;
        var converted = t_convertedRows is { } c && c.Length >= need ? c : t_convertedRows = GC.AllocateUninitializedArray<float>(checked((int)need), pinned: true);
        fixed (float* rows = converted)
            for (int g = groupStart; g < groupEnd; g += ConvertedGroups)
            {
                int groups = Math.Min(ConvertedGroups, groupEnd - g);
                for (int i = 0; i < groups; i++) Unpack(packed + (g + i) * groupBytes, nb, rows + (long)i * 8 * k, k);
                F16Format.MultiplyFloatRows(rows, 8 * groups, k, acts, actStride, tokens, y + 8 * g, yStride);
            }
    }

    /// <summary>A group's 8 rows as float rows (row j at dst + j * k).</summary>
    static void Unpack(byte* group, int nb, float* dst, int k)
    {
        var h = (ushort*)group;
        for (int b = 0; b < nb; b++, h += 8 * Width)
            for (int r = 0; r < 8; r++)
                Fp16.Load16AnyAvx512(h + r * Width).Store(dst + (long)r * k + b * Width);
    }
}
