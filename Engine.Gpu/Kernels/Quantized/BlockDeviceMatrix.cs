using Engine.Formats;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>A quantized matrix on the device: its blocks re-packed to whole 32-bit words (see
/// <see cref="IBlockDecoder"/>), rows one after another.</summary>
internal sealed class BlockDeviceMatrix(string name, GgmlType type, int rows, int cols, MemoryBuffer1D<uint, Stride1D.Dense> words)
    : DeviceMatrix(name, type, rows, cols)
{
    public ArrayView<uint> Words => words.View;
    public override long Bytes => words.LengthInBytes;
    public override void Dispose() => words.Dispose();
}
