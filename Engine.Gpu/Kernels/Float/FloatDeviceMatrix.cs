using Engine.Formats;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels.Float;

/// <summary>A float weight matrix on the device, its elements exactly as the file stores them (F32, F16 or
/// BF16 bits), row-major: element (r, c) at r * Cols + c.</summary>
internal sealed class FloatDeviceMatrix<TRaw>(string name, GgmlType type, int rows, int cols, MemoryBuffer1D<TRaw, Stride1D.Dense> data)
    : DeviceMatrix(name, type, rows, cols) where TRaw : unmanaged
{
    public ArrayView<TRaw> Data => data.View;
    public override long Bytes => data.LengthInBytes;
    public override void Dispose() => data.Dispose();
}
