namespace Engine.Quantization.Repacked;

/// <summary>
/// Q4_K matrices repacked into <see cref="BlockQ4_Kx8"/> groups: rows in groups of 8, each group's super-blocks
/// consecutive (group g, super-block b at (g * k/256 + b) * BlockQ4_Kx8.Size). Activations are Q8_K, as for
/// <see cref="Q4_KFormat"/>. Its checked public edge (repack, unpack, dots over spans) is <see cref="RepackedMatrix{TLayout}"/>; the kernels
/// are in <see cref="Q4_Kx8Kernels"/>.
///
/// Results are not the bits of the row kernels: per row and super-block the two integer sums are the same (they
/// are exact), but they are scaled and accumulated in another order (as llama.cpp's repacked path also differs
/// from its row path). All kernels here agree with <see cref="Q4_Kx8Kernels.DotReference"/> to the bit.
/// </summary>
internal sealed unsafe class Q4_Kx8 : RepackedMatrix<Q4_Kx8>, IRepackedLayout
{
    Q4_Kx8() { }

    static int IRepackedLayout.BlockWidth => QuantMath.QK_K;
    static int IRepackedLayout.GroupBlockBytes => BlockQ4_Kx8.Size;
    static RowFormat IRepackedLayout.Source => Q4_KFormat.Instance;
    static void IRepackedLayout.PackBlock(byte* src, long rowBytes, int block, byte* dst) => BlockQ4_Kx8.Pack(src, rowBytes, block, (BlockQ4_Kx8*)dst);
    static void IRepackedLayout.DequantizeBlock(byte* groupBlock, int row, float* dst) => ((BlockQ4_Kx8*)groupBlock)->Dequantize(row, dst);
    static void IRepackedLayout.DotReference(byte* group, byte* act, int nb, float* y) => Q4_Kx8Kernels.DotReference(group, act, nb, y);
    static void IRepackedLayout.DotGroup(byte* group, byte* act, int nb, float* y) => Q4_Kx8Kernels.Dot8(group, act, nb, y);
    static void IRepackedLayout.MatVec(byte* packed, int k, byte* act, float* y, int groupStart, int groupEnd) => Q4_Kx8Kernels.MatVec(packed, k, act, y, groupStart, groupEnd);
    static void IRepackedLayout.MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd) =>
        Q4_Kx8Kernels.MatMul(packed, k, acts, actStride, tokens, y, yStride, groupStart, groupEnd);
}
