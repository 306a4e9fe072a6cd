namespace Engine.Quantization.Repacked;

/// <summary>
/// Q6_K matrices repacked into <see cref="BlockQ6_Kx16"/> groups of 16 rows, for machines with AVX-512 (elsewhere, or
/// for rows not a multiple of 16, <see cref="Q6_Kx8"/>). Each group's super-blocks are consecutive (group g,
/// super-block b at (g * k/256 + b) * 3360). Activations are Q8_K. Its kernels (<see cref="Q6_Kx16Kernels"/>) form
/// every row's result with the operations of <see cref="Q6_Kx8Kernels"/>, so the two layouts give the same bits.
/// </summary>
internal sealed unsafe class Q6_Kx16 : RepackedMatrix<Q6_Kx16>, IRepackedLayout
{
    Q6_Kx16() { }

    static int IRepackedLayout.GroupRows => BlockQ6_Kx16.Rows;
    static int IRepackedLayout.BlockWidth => QuantMath.QK_K;
    static int IRepackedLayout.GroupBlockBytes => BlockQ6_Kx16.Size;
    static RowFormat IRepackedLayout.Source => Q6_KFormat.Instance;
    static bool IRepackedLayout.FasterHere => Simd.Avx512;
    static void IRepackedLayout.PackBlock(byte* src, long rowBytes, int block, byte* dst) => BlockQ6_Kx16.Pack(src, rowBytes, block, (BlockQ6_Kx16*)dst);
    static void IRepackedLayout.DequantizeBlock(byte* groupBlock, int row, float* dst) => ((BlockQ6_Kx16*)groupBlock)->Dequantize(row, dst);
    static void IRepackedLayout.DotReference(byte* group, byte* act, int nb, float* y) => Q6_Kx16Kernels.DotReference(group, act, nb, y);
    static void IRepackedLayout.DotGroup(byte* group, byte* act, int nb, float* y) => Q6_Kx16Kernels.Dot16(group, act, nb, y);
    static void IRepackedLayout.MatVec(byte* packed, int k, byte* act, float* y, int groupStart, int groupEnd) => Q6_Kx16Kernels.MatVec(packed, k, act, y, groupStart, groupEnd);
    static void IRepackedLayout.MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd) =>
        Q6_Kx16Kernels.MatMul(packed, k, acts, actStride, tokens, y, yStride, groupStart, groupEnd);
}
