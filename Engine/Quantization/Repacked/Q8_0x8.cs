using System.Runtime.Intrinsics.X86;

namespace Engine.Quantization.Repacked;

/// <summary>
/// Q8_0 matrices repacked into <see cref="BlockQ8_0x8"/> groups of 8 rows (group g, block b at (g * k/32 + b) * 272),
/// where the CPU has VNNI (vpdpbusd; without it the unsigned quants would saturate pmaddubsw's int16 pairs, and the
/// row kernels run). Activations are Q8_0. The kernels are in <see cref="Q8_0x8Kernels"/>.
///
/// Results are not the bits of the row kernels: per row and block the integer dot is the same (it is exact), but it
/// is scaled and accumulated in llama.cpp's repacked order (one accumulator per row, acc += float(int dot) * (d_w *
/// d_x)), as for <see cref="Q4_0x8"/>. All kernels here agree with <see cref="Q8_0x8Kernels.DotReference"/> to the bit.
/// </summary>
internal sealed unsafe class Q8_0x8 : RepackedMatrix<Q8_0x8>, IRepackedLayout
{
    Q8_0x8() { }

    static int IRepackedLayout.BlockWidth => 32;
    static int IRepackedLayout.GroupBlockBytes => BlockQ8_0x8.Size;
    static RowFormat IRepackedLayout.Source => Q8_0Format.Instance;
    static bool IRepackedLayout.FasterHere => Simd.Avx2Fma && AvxVnni.IsSupported;
    static void IRepackedLayout.PackBlock(byte* src, long rowBytes, int block, byte* dst) => BlockQ8_0x8.Pack(src, rowBytes, block, (BlockQ8_0x8*)dst);
    static void IRepackedLayout.DequantizeBlock(byte* groupBlock, int row, float* dst) => ((BlockQ8_0x8*)groupBlock)->Dequantize(row, dst);
    static void IRepackedLayout.DotReference(byte* group, byte* act, int nb, float* y) => Q8_0x8Kernels.DotReference(group, act, nb, y);
    static void IRepackedLayout.DotGroup(byte* group, byte* act, int nb, float* y) => Q8_0x8Kernels.MatVec(group, nb * 32, act, y, 0, 1);
    static void IRepackedLayout.MatVec(byte* packed, int k, byte* act, float* y, int groupStart, int groupEnd) => Q8_0x8Kernels.MatVec(packed, k, act, y, groupStart, groupEnd);
    static void IRepackedLayout.MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd) =>
        Q8_0x8Kernels.MatMul(packed, k, acts, actStride, tokens, y, yStride, groupStart, groupEnd);
}
