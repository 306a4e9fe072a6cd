using System.Runtime.CompilerServices;
using Engine.Formats;
using Engine.Models;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels.Float;

/// <summary>IWeightKernels for one float storage type (F32 as float, F16 and BF16 as their 16-bit patterns):
/// the weights are uploaded byte for byte and converted to float inside the kernels, so a 16-bit model takes
/// half the device memory of its float32 form.</summary>
internal sealed class FloatWeightKernels<TRaw, TElement> : IWeightKernels
    where TRaw : unmanaged where TElement : struct, IWeightElement<TRaw>
{
    readonly Accelerator _accelerator;
    readonly GroupShape _shape;
    readonly Action<KernelConfig, ArrayView<TRaw>, ArrayView<float>, ArrayView<float>, int, int> _matVec;
    readonly Action<KernelConfig, ArrayView<TRaw>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int> _matMul;
    readonly Action<Index1D, ArrayView<TRaw>, ArrayView<int>, ArrayView<float>, int> _dequantizeRows;
    readonly Action<KernelConfig, ArrayView<TRaw>, ArrayView<float>, ArrayView<float>, int, int, ArrayView<int>, int> _expertMatVec;
    readonly Action<KernelConfig, ArrayView<TRaw>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, ArrayView<int>> _expertMatMul;

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
        _expertMatVec = accelerator.LoadStreamKernel<ArrayView<TRaw>, ArrayView<float>, ArrayView<float>, int, int, ArrayView<int>, int>(
            FloatMatMulKernels.ExpertMatVec<TRaw, TElement>);
        _expertMatMul = accelerator.LoadStreamKernel<ArrayView<TRaw>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, ArrayView<int>>(
            FloatMatMulKernels.ExpertMatMul<TRaw, TElement>);
    }

    public long DeviceBytes(int rows, int cols) => (long)rows * cols * Unsafe.SizeOf<TRaw>();

    public DeviceMatrix Upload(WeightMatrix weights) => UploadStack(weights.Name, [weights]);

    public unsafe DeviceMatrix UploadStack(string name, IReadOnlyList<WeightMatrix> experts)
    {
        if (experts.Count == 0) throw new ArgumentException($"{name}: nothing to upload", nameof(experts));
        var first = experts[0];
        long count = (long)first.Rows * first.Cols;
        foreach (var weights in experts)
        {
            if (weights.Type != Type) throw new ArgumentException($"{weights.Name} is {weights.Type}, these kernels are for {Type}", nameof(experts));
            if (weights.Rows != first.Rows || weights.Cols != first.Cols) throw new ArgumentException($"{weights} differs in shape from {first}", nameof(experts));
            if (weights.View.ByteSize != count * Unsafe.SizeOf<TRaw>())
                throw new ArgumentException($"{weights.Name}: {weights.View.ByteSize} bytes for {count} {Type} elements", nameof(experts));
        }
        var buffer = _accelerator.Allocate1D<TRaw>(experts.Count * count);
        try
        {
            for (int e = 0; e < experts.Count; e++)
                buffer.View.SubView(e * count, count).CopyFromCPU(ref Unsafe.AsRef<TRaw>(experts[e].View.Pointer), count);
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
        return new FloatDeviceMatrix<TRaw>(name, Type, checked(experts.Count * first.Rows), first.Cols, buffer);
    }

    public void MatMul(DeviceMatrix w, ArrayView<float> x, int tokens, ArrayView<float> y)
    {
        var m = (FloatDeviceMatrix<TRaw>)w;
        KernelArguments.MatMul(m, x, tokens, y);
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

    public void ExpertMatVec(DeviceMatrix stack, int expertRows, ArrayView<int> expertOfSlot, int slots, ArrayView<float> x, int slotsPerInput, ArrayView<float> y)
    {
        var m = (FloatDeviceMatrix<TRaw>)stack;
        KernelArguments.ExpertMatVec(m, expertRows, expertOfSlot, slots, x, slotsPerInput, y);
        int groups = (expertRows + FloatMatMulKernels.RowsPerGroup - 1) / FloatMatMulKernels.RowsPerGroup;
        _expertMatVec(new KernelConfig(new Index2D(groups, slots), new Index2D(_shape.GroupSize, 1)), m.Data, x, y, expertRows, m.Cols, expertOfSlot, slotsPerInput);
    }

    public void ExpertMatMul(DeviceMatrix stack, int expertRows, ArrayView<int> segmentExpert, ArrayView<float> x, int tokens, ArrayView<float> y)
    {
        var m = (FloatDeviceMatrix<TRaw>)stack;
        KernelArguments.ExpertMatMul(m, expertRows, segmentExpert, x, tokens, y);
        // The tile edge is a power of two of at most 16, so it divides the segment: no tile spans two experts.
        int edge = _shape.TileEdge, slice = FloatMatMulKernels.MaxSlice;
        int rowTiles = (expertRows + edge - 1) / edge, tokenTiles = tokens / edge;
        _expertMatMul(new KernelConfig(rowTiles * tokenTiles, edge * edge), m.Data, x, y, expertRows, m.Cols, tokens, edge, slice, rowTiles, segmentExpert);
    }

    public void DequantizeRows(DeviceMatrix w, ArrayView<int> rowIds, int count, ArrayView<float> dst)
    {
        var m = (FloatDeviceMatrix<TRaw>)w;
        _dequantizeRows(count * m.Cols, m.Data, rowIds, dst, m.Cols);
    }
}
