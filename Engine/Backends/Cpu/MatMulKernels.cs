using System.Numerics.Tensors;
using Engine.Formats;
using Engine.Models;
using Engine.Quantization;

namespace Engine.Backends.Cpu;

/// <summary>y = W x over batches of tokens, reading W in place from the memory map. The output rows of W are
/// split across the workers; each worker walks its rows in small tiles and multiplies every token of the
/// batch by a tile while it is in cache, so a batch reads the weights from memory once.
/// For quantized W, each token's activations are first quantized to the type's activation format (as
/// llama.cpp does) so the dot products run on integers.</summary>
public sealed unsafe class MatMulKernels(WorkSplit split)
{
    const int RowTile = 16;
    byte[] _activations = [];

    public void MatMul(WeightMatrix w, float[] x, int tokens, float[] y)
    {
        int k = w.Cols, n = w.Rows;
        byte* basePtr = w.View.Pointer;
        long rowBytes = w.RowBytes;
        if (w.Type == GgmlType.F32)
        {
            // Float weights need no activation format: a SIMD dot straight from the map.
            split.For(n, RowTile, (start, end, _) =>
            {
                for (int r = start; r < end; r++)
                {
                    var row = new ReadOnlySpan<float>(basePtr + r * rowBytes, k);
                    for (int t = 0; t < tokens; t++)
                        y[t * n + r] = TensorPrimitives.Dot(row, x.AsSpan(t * k, k));
                }
            });
            return;
        }

        var format = RowFormats.For(w.Type);
        int actBytes = format.ActivationBytes(k);
        if (_activations.Length < (long)actBytes * tokens) _activations = new byte[checked(actBytes * tokens)];
        var acts = _activations;
        split.For(tokens, 4, (start, end, _) =>
        {
            for (int t = start; t < end; t++)
                format.QuantizeActivations(x.AsSpan(t * k, k), acts.AsSpan(t * actBytes, actBytes));
        });
        split.For(n, RowTile, (start, end, _) =>
        {
            for (int tile = start; tile < end; tile += RowTile)
            {
                int tileEnd = Math.Min(end, tile + RowTile);
                for (int t = 0; t < tokens; t++)
                    RowFormats.MatVecRows(format, basePtr, rowBytes, k, acts.AsSpan(t * actBytes, actBytes),
                        y.AsSpan(t * n, n), tile, tileEnd);
            }
        });
    }

    /// <summary>Row `row` of W as float32 (the embedding lookup).</summary>
    public void DequantizeRow(WeightMatrix w, int row, Span<float> dst)
    {
        if ((uint)row >= (uint)w.Rows) throw new ArgumentOutOfRangeException(nameof(row), $"token id {row} is outside the vocabulary of {w.Rows}");
        var bytes = new ReadOnlySpan<byte>(w.View.Pointer + row * w.RowBytes, checked((int)w.RowBytes));
        RowFormats.For(w.Type).DequantizeRow(bytes, dst);
    }
}
