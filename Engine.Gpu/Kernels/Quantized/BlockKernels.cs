using ILGPU;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>
/// The three kernels every block type shares, specialised per type through <typeparamref name="TDecoder"/>
/// (ILGPU compiles one copy per instantiation, so the decoder is inlined). Conventions: a matrix has
/// rows x cols weights, row-major, cols / BlockElements blocks per row of BlockWords words each; activations
/// x[t * cols + c]; outputs y[t * rows + r]. All sums accumulate in float.
/// </summary>
internal static class BlockKernels<TDecoder> where TDecoder : struct, IBlockDecoder
{
    /// <summary>Columns staged in shared memory per step of <see cref="MatMulTiled"/>: 128 is the coverage unit
    /// of every decoder (see <see cref="IBlockDecoder"/>), so a step never splits a piece.</summary>
    public const int ChunkCols = 128;
    public const int TileRows = 64;
    public const int TileTokens = 16;
    const int PiecesPerChunk = ChunkCols / 8;
    const int TileOutputs = TileRows * TileTokens;
    /// <summary>Row stride of the shared weight tile: one more than TileRows, so the 16 threads that write the 16
    /// pieces of one row (columns 4 apart) hit different banks instead of all the same one.</summary>
    const int WeightStride = TileRows + 1;
    /// <summary>Each task of the dot step is one row times this many tokens: one weight load from shared memory
    /// feeds four multiply-adds.</summary>
    const int TokensPerTask = 4;
    const int Tasks = TileRows * (TileTokens / TokensPerTask);

    /// <summary>Shared memory one group of <see cref="MatMulTiled"/> uses: the weight tile, the activation tile
    /// and the accumulators.</summary>
    public const int MatMulSharedBytes = (ChunkCols * WeightStride + ChunkCols * TileTokens + TileOutputs) * sizeof(float);

    /// <summary>
    /// Decode (one token): one warp per output row. Lane l reads pieces l, l + warp, ... of the row, so a warp's
    /// loads of one block are adjacent words; each lane keeps a float partial sum and the warp adds them with
    /// shuffles. Launch with any number of whole warps per group and ceil(rows / warpsPerGroup) groups.
    /// </summary>
    public static void MatVec(ArrayView<uint> blocks, int rows, int cols, ArrayView<float> x, ArrayView<float> y) =>
        MatVecRows(blocks, rows, cols, x, y);

    /// <summary>Words of one expert's rows x cols matrix in a stack of experts.</summary>
    static long ExpertWords(int rows, int cols) => (long)rows * (cols / TDecoder.BlockElements) * TDecoder.BlockWords;

    /// <summary>
    /// Decode through a mixture of experts: grid Y is the slot s (a token's chosen expert), and its groups compute
    /// y[s * rows ..] = W[expertOfSlot[s]] · x[(s / slotsPerInput) * cols ..], W being expert e's rows of a stack of
    /// equal matrices. The expert is read from device memory, so routing never passes through the host.
    /// </summary>
    public static void ExpertMatVec(ArrayView<uint> stack, int rows, int cols, ArrayView<float> x, ArrayView<float> y, ArrayView<int> expertOfSlot, int slotsPerInput)
    {
        int slot = Grid.IdxY;
        long words = ExpertWords(rows, cols);
        MatVecRows(stack.SubView(expertOfSlot[slot] * words, words), rows, cols,
            x.SubView((long)(slot / slotsPerInput) * cols, cols), y.SubView((long)slot * rows, rows));
    }

    static void MatVecRows(ArrayView<uint> blocks, int rows, int cols, ArrayView<float> x, ArrayView<float> y)
    {
        int warpsPerGroup = Group.DimX / Warp.WarpSize;
        int row = Grid.IdxX * warpsPerGroup + Warp.WarpIdx;
        int piecesPerBlock = TDecoder.BlockElements / 8;
        int blocksPerRow = cols / TDecoder.BlockElements;
        int piecesPerRow = blocksPerRow * piecesPerBlock;
        float sum = 0;
        // No early return: every lane of every warp must reach the shuffles below (the CPU accelerator
        // emulates them with barriers).
        if (row < rows)
        {
            long rowWord = (long)row * blocksPerRow * TDecoder.BlockWords;
            for (int g = Warp.LaneIdx; g < piecesPerRow; g += Warp.WarpSize)
            {
                int block = g / piecesPerBlock;
                var p = TDecoder.Decode(blocks, rowWord + (long)block * TDecoder.BlockWords, g - block * piecesPerBlock);
                int a = block * TDecoder.BlockElements + p.ColA, b = block * TDecoder.BlockElements + p.ColB;
                sum += p.V0 * x[a] + p.V1 * x[a + 1] + p.V2 * x[a + 2] + p.V3 * x[a + 3]
                     + p.V4 * x[b] + p.V5 * x[b + 1] + p.V6 * x[b + 2] + p.V7 * x[b + 3];
            }
        }
        for (int offset = Warp.WarpSize / 2; offset > 0; offset /= 2)
            sum += Warp.ShuffleDown(sum, offset);
        if (row < rows && Warp.IsFirstLane) y[row] = sum;
    }

    /// <summary>
    /// Prompt (many tokens): one group per tile of TileRows rows x TileTokens tokens (grid X over row tiles, Y over
    /// token tiles). For each step of ChunkCols columns the group dequantizes the tile's weights once into shared
    /// memory ([column][row], so consecutive threads read consecutive rows), stages the tokens' activations
    /// ([column][token]), and each thread adds the dot products of the row x four tokens it owns to their
    /// accumulators (in shared memory, so the kernel works with any group size).
    /// Weights are thus read from device memory once per TileTokens tokens instead of once per token.
    /// </summary>
    public static void MatMulTiled(ArrayView<uint> blocks, int rows, int cols, ArrayView<float> x, int tokens, ArrayView<float> y)
    {
        var weightTile = SharedMemory.Allocate<float>(ChunkCols * WeightStride);
        var tokenTile = SharedMemory.Allocate<float>(ChunkCols * TileTokens);
        var accumulators = SharedMemory.Allocate<float>(TileOutputs);
        Tile(blocks, rows, cols, x, tokens, y, Grid.IdxX * TileRows, Grid.IdxY * TileTokens, weightTile, tokenTile, accumulators);
    }

    /// <summary>
    /// A prompt through a mixture of experts: the tokens' slots come sorted by expert, each expert's run padded to
    /// whole segments of <see cref="ExpertSegment.Tokens"/> (a multiple of TileTokens), so every token tile belongs to
    /// one expert: segmentExpert[firstToken / segment], or -1 past the used segments, where the group stops at once.
    /// Then it is <see cref="MatMulTiled"/> on that expert's rows of the stack: each expert's weights are read
    /// once per tile of its tokens.
    /// </summary>
    public static void ExpertMatMulTiled(ArrayView<uint> stack, int rows, int cols, ArrayView<float> x, int tokens, ArrayView<float> y, ArrayView<int> segmentExpert)
    {
        var weightTile = SharedMemory.Allocate<float>(ChunkCols * WeightStride);
        var tokenTile = SharedMemory.Allocate<float>(ChunkCols * TileTokens);
        var accumulators = SharedMemory.Allocate<float>(TileOutputs);
        int firstToken = Grid.IdxY * TileTokens;
        int expert = segmentExpert[firstToken / ExpertSegment.Tokens];
        if (expert < 0) return; // the whole group leaves before any barrier
        long words = ExpertWords(rows, cols);
        Tile(stack.SubView(expert * words, words), rows, cols, x, tokens, y, Grid.IdxX * TileRows, firstToken, weightTile, tokenTile, accumulators);
    }

    static void Tile(ArrayView<uint> blocks, int rows, int cols, ArrayView<float> x, int tokens, ArrayView<float> y, int firstRow, int firstToken,
        ArrayView<float> weightTile, ArrayView<float> tokenTile, ArrayView<float> accumulators)
    {
        int thread = Group.IdxX, threads = Group.DimX;
        int piecesPerBlock = TDecoder.BlockElements / 8;
        int blocksPerRow = cols / TDecoder.BlockElements;
        int piecesPerRow = blocksPerRow * piecesPerBlock;

        for (int o = thread; o < TileOutputs; o += threads) accumulators[o] = 0;

        for (int firstCol = 0; firstCol < cols; firstCol += ChunkCols)
        {
            int firstPiece = firstCol / 8;
            for (int i = thread; i < TileRows * PiecesPerChunk; i += threads)
            {
                int localRow = i / PiecesPerChunk, row = firstRow + localRow, g = firstPiece + i % PiecesPerChunk;
                // Pieces past the row end cover columns past cols, which the dot below never reads.
                if (row >= rows || g >= piecesPerRow) continue;
                int block = g / piecesPerBlock;
                var p = TDecoder.Decode(blocks, ((long)row * blocksPerRow + block) * TDecoder.BlockWords, g - block * piecesPerBlock);
                int a = (block * TDecoder.BlockElements + p.ColA - firstCol) * WeightStride + localRow;
                int b = (block * TDecoder.BlockElements + p.ColB - firstCol) * WeightStride + localRow;
                weightTile[a] = p.V0; weightTile[a + WeightStride] = p.V1; weightTile[a + 2 * WeightStride] = p.V2; weightTile[a + 3 * WeightStride] = p.V3;
                weightTile[b] = p.V4; weightTile[b + WeightStride] = p.V5; weightTile[b + 2 * WeightStride] = p.V6; weightTile[b + 3 * WeightStride] = p.V7;
            }
            int chunk = cols - firstCol < ChunkCols ? cols - firstCol : ChunkCols;
            for (int i = thread; i < TileTokens * ChunkCols; i += threads)
            {
                int localToken = i / ChunkCols, c = i % ChunkCols, token = firstToken + localToken;
                tokenTile[c * TileTokens + localToken] = token < tokens && c < chunk ? x[(long)token * cols + firstCol + c] : 0f;
            }
            Group.Barrier();

            // Consecutive threads take consecutive rows of the same four tokens: conflict-free weight reads and
            // broadcast activation reads.
            for (int task = thread; task < Tasks; task += threads)
            {
                int localRow = task % TileRows, firstLocalToken = task / TileRows * TokensPerTask;
                float sum0 = 0, sum1 = 0, sum2 = 0, sum3 = 0;
                for (int c = 0; c < chunk; c++)
                {
                    float weight = weightTile[c * WeightStride + localRow];
                    int t = c * TileTokens + firstLocalToken;
                    sum0 += weight * tokenTile[t];
                    sum1 += weight * tokenTile[t + 1];
                    sum2 += weight * tokenTile[t + 2];
                    sum3 += weight * tokenTile[t + 3];
                }
                int o = firstLocalToken * TileRows + localRow;
                accumulators[o] += sum0;
                accumulators[o + TileRows] += sum1;
                accumulators[o + 2 * TileRows] += sum2;
                accumulators[o + 3 * TileRows] += sum3;
            }
            // The next step overwrites both tiles.
            Group.Barrier();
        }

        for (int o = thread; o < TileOutputs; o += threads)
        {
            int row = firstRow + o % TileRows, token = firstToken + o / TileRows;
            if (row < rows && token < tokens) y[(long)token * rows + row] = accumulators[o];
        }
    }

    /// <summary>
    /// Embedding lookup: one thread per (output row, piece) writes that piece's eight floats to
    /// dst[i * cols + column]. A row id outside [0, rows) yields a zero row rather than an out-of-bounds read
    /// (the backend validates token ids before it gets here).
    /// </summary>
    public static void DequantizeRows(Index1D index, ArrayView<uint> blocks, int rows, int cols, ArrayView<int> rowIds, ArrayView<float> dst)
    {
        int piecesPerBlock = TDecoder.BlockElements / 8;
        int blocksPerRow = cols / TDecoder.BlockElements;
        int piecesPerRow = blocksPerRow * piecesPerBlock;
        int i = index / piecesPerRow, g = index % piecesPerRow;
        int block = g / piecesPerBlock;
        int rowId = rowIds[i];
        bool valid = rowId >= 0 && rowId < rows;
        // An invalid id decodes row 0 (always in bounds) for the piece's columns, then writes zeros.
        var p = TDecoder.Decode(blocks, ((long)(valid ? rowId : 0) * blocksPerRow + block) * TDecoder.BlockWords, g - block * piecesPerBlock);
        if (!valid) p.V0 = p.V1 = p.V2 = p.V3 = p.V4 = p.V5 = p.V6 = p.V7 = 0;
        long a = (long)i * cols + block * TDecoder.BlockElements + p.ColA;
        long b = (long)i * cols + block * TDecoder.BlockElements + p.ColB;
        dst[a] = p.V0; dst[a + 1] = p.V1; dst[a + 2] = p.V2; dst[a + 3] = p.V3;
        dst[b] = p.V4; dst[b + 1] = p.V5; dst[b + 2] = p.V6; dst[b + 3] = p.V7;
    }
}
