using ILGPU;

namespace Engine.Gpu.Kernels.Float;

/// <summary>The device code of the float weight types. W is row-major Rows x Cols, x is tokens x Cols,
/// y is tokens x Rows; sums are float32, in an order that differs from the CPU backend's (so results agree
/// to rounding, not to the bit).</summary>
internal static class FloatMatMulKernels
{
    /// <summary>Output rows one group of the matrix-vector kernel computes together.</summary>
    public const int RowsPerGroup = 4;

    /// <summary>One token (decode): each group computes <see cref="RowsPerGroup"/> output rows. The threads stride
    /// over the rows so that neighbouring threads read neighbouring elements (coalesced) and each x element is
    /// loaded once for all the rows, then the group sums the partial sums of all its rows in one tree (one set
    /// of barriers for several rows).</summary>
    public static void MatVec<TRaw, TElement>(ArrayView<TRaw> w, ArrayView<float> x, ArrayView<float> y, int rows, int cols)
        where TRaw : unmanaged where TElement : struct, IWeightElement<TRaw>
    {
        var scratch = SharedMemory.Allocate<float>(RowsPerGroup * GroupShape.MaxGroupSize);
        MatVecRows<TRaw, TElement>(w, x, y, rows, cols, scratch);
    }

    /// <summary>Decode through a mixture of experts: grid Y is the slot s, whose groups compute
    /// y[s * rows ..] = W_e · x[(s / slotsPerInput) * cols ..] with e = expertOfSlot[s] read on the device and W_e
    /// expert e's rows x cols of the stack.</summary>
    public static void ExpertMatVec<TRaw, TElement>(ArrayView<TRaw> stack, ArrayView<float> x, ArrayView<float> y, int rows, int cols, ArrayView<int> expertOfSlot, int slotsPerInput)
        where TRaw : unmanaged where TElement : struct, IWeightElement<TRaw>
    {
        var scratch = SharedMemory.Allocate<float>(RowsPerGroup * GroupShape.MaxGroupSize);
        int slot = Grid.IdxY;
        long size = (long)rows * cols;
        MatVecRows<TRaw, TElement>(stack.SubView(expertOfSlot[slot] * size, size), x.SubView((long)(slot / slotsPerInput) * cols, cols),
            y.SubView((long)slot * rows, rows), rows, cols, scratch);
    }

    static void MatVecRows<TRaw, TElement>(ArrayView<TRaw> w, ArrayView<float> x, ArrayView<float> y, int rows, int cols, ArrayView<float> scratch)
        where TRaw : unmanaged where TElement : struct, IWeightElement<TRaw>
    {
        int firstRow = Grid.IdxX * RowsPerGroup, lane = Group.IdxX, size = Group.DimX;
        float sum0 = 0, sum1 = 0, sum2 = 0, sum3 = 0;
        long start0 = (long)firstRow * cols;
        for (int c = lane; c < cols; c += size)
        {
            float xc = x[c];
            // Rows past the end read row 0 instead (always valid); their sums are never written.
            sum0 += default(TElement).ToFloat(w[start0 + c]) * xc;
            sum1 += default(TElement).ToFloat(w[(firstRow + 1 < rows ? start0 + cols : 0) + c]) * xc;
            sum2 += default(TElement).ToFloat(w[(firstRow + 2 < rows ? start0 + 2L * cols : 0) + c]) * xc;
            sum3 += default(TElement).ToFloat(w[(firstRow + 3 < rows ? start0 + 3L * cols : 0) + c]) * xc;
        }
        scratch[lane] = sum0;
        scratch[size + lane] = sum1;
        scratch[2 * size + lane] = sum2;
        scratch[3 * size + lane] = sum3;
        Group.Barrier();
        for (int stride = size / 2; stride > 0; stride >>= 1)
        {
            if (lane < stride)
                for (int r = 0; r < RowsPerGroup; r++) scratch[r * size + lane] += scratch[r * size + lane + stride];
            Group.Barrier();
        }
        for (int r = lane; r < RowsPerGroup; r += size)
            if (firstRow + r < rows) y[firstRow + r] = scratch[r * size];
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
        Tile<TRaw, TElement>(w, x, y, rows, cols, tokens, edge, slice, Grid.IdxX % rowTiles * edge, Grid.IdxX / rowTiles * edge, wTile, xTile);
    }

    /// <summary>A prompt through a mixture of experts: x's tokens come sorted by expert in segments of
    /// <see cref="ExpertSegment.Tokens"/> (edge divides it), so each tile of tokens belongs to the one expert
    /// segmentExpert[tokenBase / segment], or to none (-1: the group stops at once). Then it is <see cref="MatMul"/>
    /// on that expert's rows of the stack.</summary>
    public static void ExpertMatMul<TRaw, TElement>(ArrayView<TRaw> stack, ArrayView<float> x, ArrayView<float> y,
        int rows, int cols, int tokens, int edge, int slice, int rowTiles, ArrayView<int> segmentExpert)
        where TRaw : unmanaged where TElement : struct, IWeightElement<TRaw>
    {
        var wTile = SharedMemory.Allocate<float>(MaxTileEdge * (MaxSlice + 1));
        var xTile = SharedMemory.Allocate<float>(MaxTileEdge * (MaxSlice + 1));
        int tokenBase = Grid.IdxX / rowTiles * edge;
        int expert = segmentExpert[tokenBase / ExpertSegment.Tokens];
        if (expert < 0) return; // the whole group leaves before any barrier
        long size = (long)rows * cols;
        Tile<TRaw, TElement>(stack.SubView(expert * size, size), x, y, rows, cols, tokens, edge, slice, Grid.IdxX % rowTiles * edge, tokenBase, wTile, xTile);
    }

    static void Tile<TRaw, TElement>(ArrayView<TRaw> w, ArrayView<float> x, ArrayView<float> y,
        int rows, int cols, int tokens, int edge, int slice, int rowBase, int tokenBase, ArrayView<float> wTile, ArrayView<float> xTile)
        where TRaw : unmanaged where TElement : struct, IWeightElement<TRaw>
    {
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
