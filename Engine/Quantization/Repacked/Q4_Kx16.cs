namespace Engine.Quantization.Repacked;

/// <summary>
/// Q4_K matrices repacked into <see cref="BlockQ4_Kx16"/> groups of 16 rows, for machines with AVX-512 (elsewhere
/// <see cref="Q4_Kx8"/>; a matrix whose rows are not a multiple of 16 also takes that one). Each group's super-blocks
/// are consecutive (group g, super-block b at (g * k/256 + b) * 2304). Activations are Q8_K. Its kernels
/// (<see cref="Q4_Kx16Kernels"/>) form every row's result with the operations of <see cref="Q4_Kx8Kernels"/>, so the
/// two layouts give the same bits.
/// </summary>
internal sealed unsafe class Q4_Kx16 : RepackedMatrix<Q4_Kx16>, IRepackedLayout
{
    Q4_Kx16() { }

    static int IRepackedLayout.GroupRows => BlockQ4_Kx16.Rows;
    static int IRepackedLayout.BlockWidth => QuantMath.QK_K;
    static int IRepackedLayout.GroupBlockBytes => BlockQ4_Kx16.Size;
    static RowFormat IRepackedLayout.Source => Q4_KFormat.Instance;
    static bool IRepackedLayout.FasterHere => Simd.Avx512;
    static void IRepackedLayout.PackBlock(byte* src, long rowBytes, int block, byte* dst) => BlockQ4_Kx16.Pack(src, rowBytes, block, (BlockQ4_Kx16*)dst);
    static void IRepackedLayout.DequantizeBlock(byte* groupBlock, int row, float* dst) => ((BlockQ4_Kx16*)groupBlock)->Dequantize(row, dst);
    static void IRepackedLayout.DotReference(byte* group, byte* act, int nb, float* y) => Q4_Kx16Kernels.DotReference(group, act, nb, y);
    static void IRepackedLayout.DotGroup(byte* group, byte* act, int nb, float* y) => Q4_Kx16Kernels.Dot16(group, act, nb, y);
    static void IRepackedLayout.MatVec(byte* packed, int k, byte* act, float* y, int groupStart, int groupEnd) => Q4_Kx16Kernels.MatVec(packed, k, act, y, groupStart, groupEnd);
    static void IRepackedLayout.MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd) =>
        Q4_Kx16Kernels.MatMul(packed, k, acts, actStride, tokens, y, yStride, groupStart, groupEnd);
}
