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

    /// <summary>The widest slice of K the matrix-matrix kernel stages at once (shared memory holds
    /// 2 x MaxTileEdge x (MaxSlice + 1) floats, 16.5 KiB, under every device's minimum of 32 KiB).</summary>
    public const int MaxSlice = 128;

    /// <summary>The largest tile edge (16 x 16 = 256 threads, <see cref="GroupShape.MaxGroupSize"/>).</summary>
    public const int MaxTileEdge = 16;

    /// <summary>Many tokens (prompt): each group computes an edge x edge tile of y (edge tokens by edge rows).
    /// K is walked in slices of `slice`: the group copies the tile's W rows and x tokens over the slice into
    /// shared memory (neighbouring threads reading neighbouring elements), then every thread reuses them from
    /// there, so each W element is read from device memory once per tile of tokens instead of once per token.
    /// Shared rows are padded by one float so that the threads of a warp, reading different rows at the same
    /// column, hit different banks.</summary>
    public static void MatMul<TRaw, TElement>(ArrayView<TRaw> w, ArrayView<float> x, ArrayView<float> y,
        int rows, int cols, int tokens, int edge, int slice, int rowTiles)
        where TRaw : unmanaged where TElement : struct, IWeightElement<TRaw>
    {
        var wTile = SharedMemory.Allocate<float>(MaxTileEdge * (MaxSlice + 1));
        var xTile = SharedMemory.Allocate<float>(MaxTileEdge * (MaxSlice + 1));
        int rowBase = Grid.IdxX % rowTiles * edge, tokenBase = Grid.IdxX / rowTiles * edge;
        int lane = Group.IdxX, stride = slice + 1;
        // This thread owns y[tokenBase + token, rowBase + row].
        int token = lane / edge, row = lane % edge;
        float sum = 0;
        for (int k0 = 0; k0 < cols; k0 += slice)
        {
            for (int i = lane; i < edge * slice; i += Group.DimX)
            {
                int along = i / slice, k = k0 + i % slice;
                int loadRow = rowBase + along, loadToken = tokenBase + along;
                wTile[along * stride + i % slice] = loadRow < rows && k < cols ? default(TElement).ToFloat(w[(long)loadRow * cols + k]) : 0f;
                xTile[along * stride + i % slice] = loadToken < tokens && k < cols ? x[(long)loadToken * cols + k] : 0f;
            }
            Group.Barrier();
            for (int i = 0; i < slice; i++) sum += wTile[row * stride + i] * xTile[token * stride + i];
            Group.Barrier();
        }
        if (tokenBase + token < tokens && rowBase + row < rows) y[(long)(tokenBase + token) * rows + rowBase + row] = sum;
    }

    /// <summary>dst[i * cols + c] = W[rowIds[i], c]: one thread per output element.</summary>
    public static void DequantizeRows<TRaw, TElement>(Index1D index, ArrayView<TRaw> w, ArrayView<int> rowIds, ArrayView<float> dst, int cols)
        where TRaw : unmanaged where TElement : struct, IWeightElement<TRaw>
    {
        int i = index / cols, c = index % cols;
        dst[index] = default(TElement).ToFloat(w[(long)rowIds[i] * cols + c]);
    }
}
