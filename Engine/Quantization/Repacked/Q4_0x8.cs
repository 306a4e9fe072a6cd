namespace Engine.Quantization.Repacked;

/// <summary>
/// Q4_0 matrices repacked into <see cref="BlockQ4_0x8"/> groups: rows in groups of 8, each group's blocks
/// consecutive (group g, block b at (g * k/32 + b) * BlockQ4_0x8.Size). Activations are Q8_0, as for
/// <see cref="Q4_0Format"/>. Its checked public edge (repack, unpack, dots over spans) is <see cref="RepackedMatrix{TLayout}"/>; the kernels
/// are in <see cref="Q4_0x8Kernels"/>.
///
/// Results are not the bits of the row kernels: per row and block the integer dot is the same (it is exact),
/// but it is scaled and accumulated in another order (llama.cpp's repacked order, ggml_gemv_q4_0_8x8_q8_0:
/// one accumulator per row, acc += float(int dot) * (d_w * d_x)). All kernels here agree with
/// <see cref="Q4_0x8Kernels.DotReference"/> to the bit.
/// </summary>
internal sealed unsafe class Q4_0x8 : RepackedMatrix<Q4_0x8>, IRepackedLayout
{
    Q4_0x8() { }

    static int IRepackedLayout.BlockWidth => BlockQ4_0.QK;
    static int IRepackedLayout.GroupBlockBytes => BlockQ4_0x8.Size;
    static RowFormat IRepackedLayout.Source => Q4_0Format.Instance;
    static void IRepackedLayout.PackBlock(byte* src, long rowBytes, int block, byte* dst) => BlockQ4_0x8.Pack(src, rowBytes, block, (BlockQ4_0x8*)dst);
    static void IRepackedLayout.DequantizeBlock(byte* groupBlock, int row, float* dst) => ((BlockQ4_0x8*)groupBlock)->Dequantize(row, dst);
    static void IRepackedLayout.DotReference(byte* group, byte* act, int nb, float* y) => Q4_0x8Kernels.DotReference(group, act, nb, y);
    static void IRepackedLayout.DotGroup(byte* group, byte* act, int nb, float* y) => Q4_0x8Kernels.MatVec(group, nb * BlockQ4_0.QK, act, y, 0, 1);
    static void IRepackedLayout.MatVec(byte* packed, int k, byte* act, float* y, int groupStart, int groupEnd) => Q4_0x8Kernels.MatVec(packed, k, act, y, groupStart, groupEnd);
    static void IRepackedLayout.MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd) =>
        Q4_0x8Kernels.MatMul(packed, k, acts, actStride, tokens, y, yStride, groupStart, groupEnd);
}
