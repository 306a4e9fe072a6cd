using ILGPU;

namespace Engine.Gpu.Kernels.Float;

/// <summary>The device code of the float weight types. W is row-major Rows x Cols, x is tokens x Cols,
/// y is tokens x Rows; sums are float32, in an order that differs from the CPU backend's (so results agree
/// to rounding, not to the bit).</summary>
public static class FloatMatMulKernels
{
    /// <summary>One token (decode): one group per output row. The threads stride over the row so that
    /// neighbouring threads read neighbouring elements (coalesced), then the group sums its partial sums.</summary>
    public static void MatVec<TRaw, TElement>(ArrayView<TRaw> w, ArrayView<float> x, ArrayView<float> y, int rows, int cols)
        where TRaw : unmanaged where TElement : struct, IWeightElement<TRaw>
    {
        var scratch = SharedMemory.Allocate<float>(GroupShape.MaxGroupSize);
        int row = Grid.IdxX, lane = Group.IdxX;
        float sum = 0;
        if (row < rows)
        {
            long rowStart = (long)row * cols;
            for (int c = lane; c < cols; c += Group.DimX)
                sum += default(TElement).ToFloat(w[rowStart + c]) * x[c];
        }
        float total = GroupReduction.Sum(scratch, sum);
        if (lane == 0 && row < rows) y[row] = total;
    }

    /// <summary>Many tokens (prompt): each group computes an edge x edge tile of y (edge tokens by edge rows).
    /// The K dimension is walked in slices of `edge`: the group loads a slice of W rows and of x tokens into
    /// shared memory once, and every thread reuses both from there, so each W element is read from device
    /// memory once per tile of tokens instead of once per token.</summary>
    public static void MatMul<TRaw, TElement>(ArrayView<TRaw> w, ArrayView<float> x, ArrayView<float> y,
        int rows, int cols, int tokens, int edge, int rowTiles)
        where TRaw : unmanaged where TElement : struct, IWeightElement<TRaw>
    {
        var wTile = SharedMemory.Allocate<float>(GroupShape.MaxGroupSize);
        var xTile = SharedMemory.Allocate<float>(GroupShape.MaxGroupSize);
        int rowBase = Grid.IdxX % rowTiles * edge, tokenBase = Grid.IdxX / rowTiles * edge;
        int lane = Group.IdxX;
        // For loading: this thread fetches element `across` of row/token `along` of the slice.
        // For computing: this thread owns y[tokenBase + along, rowBase + across].
        int along = lane / edge, across = lane % edge;
        float sum = 0;
        for (int k0 = 0; k0 < cols; k0 += edge)
        {
            int k = k0 + across;
            int loadRow = rowBase + along, loadToken = tokenBase + along;
            wTile[lane] = loadRow < rows && k < cols ? default(TElement).ToFloat(w[(long)loadRow * cols + k]) : 0f;
            xTile[lane] = loadToken < tokens && k < cols ? x[(long)loadToken * cols + k] : 0f;
            Group.Barrier();
            for (int i = 0; i < edge; i++) sum += wTile[across * edge + i] * xTile[along * edge + i];
            Group.Barrier();
        }
        int token = tokenBase + along, row = rowBase + across;
        if (token < tokens && row < rows) y[(long)token * rows + row] = sum;
    }

    /// <summary>dst[i * cols + c] = W[rowIds[i], c]: one thread per output element.</summary>
    public static void DequantizeRows<TRaw, TElement>(Index1D index, ArrayView<TRaw> w, ArrayView<int> rowIds, ArrayView<float> dst, int cols)
        where TRaw : unmanaged where TElement : struct, IWeightElement<TRaw>
    {
        int i = index / cols, c = index % cols;
        dst[index] = default(TElement).ToFloat(w[(long)rowIds[i] * cols + c]);
    }
}
