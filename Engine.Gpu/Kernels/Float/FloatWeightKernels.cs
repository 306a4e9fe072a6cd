using System.Runtime.CompilerServices;
using Engine.Formats;
using Engine.Models;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels.Float;

/// <summary>IWeightKernels for one float storage type (F32 as float, F16 and BF16 as their 16-bit patterns):
/// the weights are uploaded byte for byte and converted to float inside the kernels, so a 16-bit model takes
/// half the device memory of its float32 form.</summary>
public sealed class FloatWeightKernels<TRaw, TElement> : IWeightKernels
    where TRaw : unmanaged where TElement : struct, IWeightElement<TRaw>
{
    readonly Accelerator _accelerator;
    readonly GroupShape _shape;
    readonly Action<KernelConfig, ArrayView<TRaw>, ArrayView<float>, ArrayView<float>, int, int> _matVec;
    readonly Action<KernelConfig, ArrayView<TRaw>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int> _matMul;
    readonly Action<Index1D, ArrayView<TRaw>, ArrayView<int>, ArrayView<float>, int> _dequantizeRows;

    public GgmlType Type { get; }

    public FloatWeightKernels(Accelerator accelerator, GgmlType type)
    {
        _accelerator = accelerator;
        _shape = new GroupShape(accelerator);
        Type = type;
        _matVec = accelerator.LoadStreamKernel<ArrayView<TRaw>, ArrayView<float>, ArrayView<float>, int, int>(
            FloatMatMulKernels.MatVec<TRaw, TElement>);
        _matMul = accelerator.LoadStreamKernel<ArrayView<TRaw>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int>(
            FloatMatMulKernels.MatMul<TRaw, TElement>);
        _dequantizeRows = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<TRaw>, ArrayView<int>, ArrayView<float>, int>(
            FloatMatMulKernels.DequantizeRows<TRaw, TElement>);
    }

    public long DeviceBytes(int rows, int cols) => (long)rows * cols * Unsafe.SizeOf<TRaw>();

    public unsafe DeviceMatrix Upload(WeightMatrix weights)
    {
        if (weights.Type != Type) throw new ArgumentException($"{weights.Name} is {weights.Type}, these kernels are for {Type}", nameof(weights));
        long count = (long)weights.Rows * weights.Cols;
        if (weights.View.ByteSize != count * Unsafe.SizeOf<TRaw>())
            throw new ArgumentException($"{weights.Name}: {weights.View.ByteSize} bytes for {count} {Type} elements", nameof(weights));
        var buffer = _accelerator.Allocate1D<TRaw>(count);
        try
        {
            buffer.View.CopyFromCPU(ref Unsafe.AsRef<TRaw>(weights.View.Pointer), count);
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
        return new FloatDeviceMatrix<TRaw>(weights.Name, Type, weights.Rows, weights.Cols, buffer);
    }

    public void MatMul(DeviceMatrix w, ArrayView<float> x, int tokens, ArrayView<float> y)
    {
        var m = (FloatDeviceMatrix<TRaw>)w;
        if (tokens == 1)
        {
            int groups = (m.Rows + FloatMatMulKernels.RowsPerGroup - 1) / FloatMatMulKernels.RowsPerGroup;
            _matVec(new KernelConfig(groups, _shape.GroupSize), m.Data, x, y, m.Rows, m.Cols);
            return;
        }
        // The widest slice whatever the group size: fewer barriers per tile (and the ILGPU CPU simulator, where a
        // barrier is an OS rendezvous, gets through a prompt several times faster).
        int edge = _shape.TileEdge, slice = FloatMatMulKernels.MaxSlice;
        int rowTiles = (m.Rows + edge - 1) / edge, tokenTiles = (tokens + edge - 1) / edge;
        _matMul(new KernelConfig(rowTiles * tokenTiles, edge * edge), m.Data, x, y, m.Rows, m.Cols, tokens, edge, slice, rowTiles);
    }

    public void DequantizeRows(DeviceMatrix w, ArrayView<int> rowIds, int count, ArrayView<float> dst)
    {
        var m = (FloatDeviceMatrix<TRaw>)w;
        _dequantizeRows(count * m.Cols, m.Data, rowIds, dst, m.Cols);
    }
}
