using Engine.Formats;
using Engine.Models;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>The <see cref="IWeightKernels"/> of one block type: its three kernels compiled once for this
/// accelerator, launched on the default stream without synchronizing.</summary>
internal sealed class BlockWeightKernels<TDecoder> : IWeightKernels where TDecoder : struct, IBlockDecoder
{
    /// <summary>Warps per group of the decode kernel (one row each): enough to hide latency, few enough that
    /// small matrices still spread over every multiprocessor.</summary>
    const int MatVecWarpsPerGroup = 4;
    const int MatMulGroupSize = 256;

    readonly Accelerator _accelerator;
    readonly int _matVecGroupSize, _matMulGroupSize;
    readonly Action<KernelConfig, ArrayView<uint>, int, int, ArrayView<float>, ArrayView<float>> _matVec;
    readonly Action<KernelConfig, ArrayView<uint>, int, int, ArrayView<float>, int, ArrayView<float>> _matMul;
    readonly Action<Index1D, ArrayView<uint>, int, int, ArrayView<int>, ArrayView<float>> _dequantizeRows;
    readonly Action<KernelConfig, ArrayView<uint>, int, int, ArrayView<float>, ArrayView<float>, ArrayView<int>, int> _expertMatVec;
    readonly Action<KernelConfig, ArrayView<uint>, int, int, ArrayView<float>, int, ArrayView<float>, ArrayView<int>> _expertMatMul;

    public BlockWeightKernels(Accelerator accelerator)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (accelerator.MaxSharedMemoryPerGroup < BlockKernels<TDecoder>.MatMulSharedBytes)
            throw new NotSupportedException($"{accelerator.Name} has {accelerator.MaxSharedMemoryPerGroup} bytes of shared memory per group; the {Type} prompt kernel needs {BlockKernels<TDecoder>.MatMulSharedBytes}");
        _accelerator = accelerator;
        int warps = Math.Max(1, Math.Min(MatVecWarpsPerGroup, accelerator.MaxNumThreadsPerGroup / accelerator.WarpSize));
        _matVecGroupSize = warps * accelerator.WarpSize;
        _matMulGroupSize = Math.Min(MatMulGroupSize, accelerator.MaxNumThreadsPerGroup);
        _matVec = accelerator.LoadStreamKernel<ArrayView<uint>, int, int, ArrayView<float>, ArrayView<float>>(BlockKernels<TDecoder>.MatVec);
        _matMul = accelerator.LoadStreamKernel<ArrayView<uint>, int, int, ArrayView<float>, int, ArrayView<float>>(BlockKernels<TDecoder>.MatMulTiled);
        _dequantizeRows = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<uint>, int, int, ArrayView<int>, ArrayView<float>>(BlockKernels<TDecoder>.DequantizeRows);
        _expertMatVec = accelerator.LoadStreamKernel<ArrayView<uint>, int, int, ArrayView<float>, ArrayView<float>, ArrayView<int>, int>(BlockKernels<TDecoder>.ExpertMatVec);
        _expertMatMul = accelerator.LoadStreamKernel<ArrayView<uint>, int, int, ArrayView<float>, int, ArrayView<float>, ArrayView<int>>(BlockKernels<TDecoder>.ExpertMatMulTiled);
    }

    public GgmlType Type => TDecoder.Type;

    public long DeviceBytes(int rows, int cols) => BlockRepacker<TDecoder>.Words(rows, cols) * sizeof(uint);

    public DeviceMatrix Upload(WeightMatrix weights) => BlockRepacker<TDecoder>.Upload(_accelerator, weights);

    public DeviceMatrix UploadStack(string name, IReadOnlyList<WeightMatrix> experts) => BlockRepacker<TDecoder>.Upload(_accelerator, name, experts);

    public void ExpertMatVec(DeviceMatrix stack, int expertRows, ArrayView<int> expertOfSlot, int slots, ArrayView<float> x, int slotsPerInput, ArrayView<float> y)
    {
        var m = Check(stack);
        KernelArguments.ExpertMatVec(m, expertRows, expertOfSlot, slots, x, slotsPerInput, y);
        int rowsPerGroup = _matVecGroupSize / _accelerator.WarpSize;
        var grid = new Index2D((expertRows + rowsPerGroup - 1) / rowsPerGroup, slots);
        _expertMatVec(new KernelConfig(grid, new Index2D(_matVecGroupSize, 1)), m.Words, expertRows, m.Cols, x, y, expertOfSlot, slotsPerInput);
    }

    public void ExpertMatMul(DeviceMatrix stack, int expertRows, ArrayView<int> segmentExpert, ArrayView<float> x, int tokens, ArrayView<float> y)
    {
        var m = Check(stack);
        KernelArguments.ExpertMatMul(m, expertRows, segmentExpert, x, tokens, y);
        var grid = new Index2D((expertRows + BlockKernels<TDecoder>.TileRows - 1) / BlockKernels<TDecoder>.TileRows, tokens / BlockKernels<TDecoder>.TileTokens);
        _expertMatMul(new KernelConfig(grid, new Index2D(_matMulGroupSize, 1)), m.Words, expertRows, m.Cols, x, tokens, y, segmentExpert);
    }

    public void MatMul(DeviceMatrix w, ArrayView<float> x, int tokens, ArrayView<float> y)
    {
        var m = Check(w);
        KernelArguments.MatMul(m, x, tokens, y);
        if (tokens == 1)
        {
            int rowsPerGroup = _matVecGroupSize / _accelerator.WarpSize;
            _matVec(new KernelConfig((m.Rows + rowsPerGroup - 1) / rowsPerGroup, _matVecGroupSize), m.Words, m.Rows, m.Cols, x, y);
            return;
        }
        var grid = new Index2D((m.Rows + BlockKernels<TDecoder>.TileRows - 1) / BlockKernels<TDecoder>.TileRows,
                               (tokens + BlockKernels<TDecoder>.TileTokens - 1) / BlockKernels<TDecoder>.TileTokens);
        _matMul(new KernelConfig(grid, new Index2D(_matMulGroupSize, 1)), m.Words, m.Rows, m.Cols, x, tokens, y);
    }

    public void DequantizeRows(DeviceMatrix w, ArrayView<int> rowIds, int count, ArrayView<float> dst)
    {
        var m = Check(w);
        if (count < 0 || count > rowIds.Length) throw new ArgumentOutOfRangeException(nameof(count), count, $"rowIds holds {rowIds.Length}");
        if (dst.Length < (long)count * m.Cols) throw new ArgumentException($"dst holds {dst.Length} floats, {count} x {m.Cols} needed", nameof(dst));
        if (count == 0) return;
        _dequantizeRows(checked(count * (m.Cols / 8)), m.Words, m.Rows, m.Cols, rowIds, dst);
    }

    BlockDeviceMatrix Check(DeviceMatrix w) =>
        w as BlockDeviceMatrix is { } m && m.Type == Type
            ? m
            : throw new ArgumentException($"{w?.Name} is not a {Type} matrix uploaded by these kernels", nameof(w));
}
