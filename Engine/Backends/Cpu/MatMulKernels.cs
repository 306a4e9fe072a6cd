using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Engine.Formats;
using Engine.Models;

namespace Engine.Backends.Cpu;

/// <summary>y = W x over batches of tokens, reading W in place from the memory map. The output rows of W are
/// split across the workers; each worker walks its rows once and multiplies every token of the batch by
/// each row while it is in cache, so a batch reads the weights once.</summary>
public sealed unsafe class MatMulKernels(WorkSplit split)
{
    public void MatMul(WeightMatrix w, float[] x, int tokens, float[] y)
    {
        int k = w.Cols, n = w.Rows;
        byte* basePtr = w.View.Pointer;
        long rowBytes = w.RowBytes;
        switch (w.Type)
        {
            case GgmlType.F32:
                split.For(n, 16, (start, end, _) =>
                {
                    for (int r = start; r < end; r++)
                    {
                        var row = new ReadOnlySpan<float>(basePtr + r * rowBytes, k);
                        for (int t = 0; t < tokens; t++)
                            y[t * n + r] = TensorPrimitives.Dot(row, x.AsSpan(t * k, k));
                    }
                });
                break;
            default:
                throw new NotSupportedException($"{w.Name}: matmul for {w.Type} is not implemented");
        }
    }

    /// <summary>Row `row` of W as float32 (the embedding lookup).</summary>
    public void DequantizeRow(WeightMatrix w, int row, Span<float> dst)
    {
        if ((uint)row >= (uint)w.Rows) throw new ArgumentOutOfRangeException(nameof(row), $"token id {row} is outside the vocabulary of {w.Rows}");
        var bytes = new ReadOnlySpan<byte>(w.View.Pointer + row * w.RowBytes, checked((int)w.RowBytes));
        switch (w.Type)
        {
            case GgmlType.F32: MemoryMarshal.Cast<byte, float>(bytes).CopyTo(dst); break;
            case GgmlType.F16:
                var halves = MemoryMarshal.Cast<byte, Half>(bytes);
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)halves[i];
                break;
            default: throw new NotSupportedException($"{w.Name}: dequantization of {w.Type} is not implemented");
        }
    }
}
