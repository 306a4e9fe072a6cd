using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels;

/// <summary>
/// Causal grouped-query attention over a paged KV pool, flash-attention style: one group per (row, query head) walks
/// the keys of the row's own sequence in tiles of one key per thread, keeps a running maximum and a running sum of
/// the softmax (the "online softmax"), and rescales its output accumulator whenever the maximum grows, so no row of
/// scores longer than a tile is ever stored. Key j of a sequence lives in slot table[j / BlockTokens] * BlockTokens +
/// j % BlockTokens of the pool (the row's sequence's block table): each thread finds its key's slot, and the tile's
/// slots are shared for the value pass. The same kernel serves prompts (many rows), decode steps (one row per
/// sequence) and batches of several sequences.
///
/// Query head h reads KV head h / (heads / kvHeads), as the CPU backend. Differences from the CPU backend: tiles of
/// the group size instead of KV blocks, the normalization once at the end, sums in tree order; outputs agree to float
/// rounding (a few ulps times the context length), not bit for bit. A row's result depends only on its query and its
/// sequence's cache, and is computed in the same order whatever else is in the batch.
/// </summary>
internal sealed class AttentionKernels
{
    /// <summary>The widest head (query/key or value) the kernel keeps in shared memory.</summary>
    public const int MaxHeadDim = 256;

    readonly GroupShape _shape;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, AttentionShape> _f32;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, AttentionShape> _f16;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<byte>, ArrayView<byte>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, AttentionShape> _q8_0;

    /// <summary>Sizes of one call: KeyWidth/ValueWidth are the pool's rows (every KV head), BlockTokens its blocks.</summary>
    public readonly record struct AttentionShape(int Heads, int Group, int HeadDim, int ValueDim, int KeyWidth, int ValueWidth, int BlockTokens, float Scale);

    public AttentionKernels(Accelerator accelerator, GroupShape shape)
    {
        _shape = shape;
        _f32 = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, AttentionShape>(
            AttentionKernel<float, F32KvElement>);
        _f16 = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, AttentionShape>(
            AttentionKernel<ushort, F16KvElement>);
        _q8_0 = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<byte>, ArrayView<byte>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, AttentionShape>(
            AttentionKernel<byte, Q8_0KvElement>);
    }

    /// <summary>Attention of `rows` rows over one layer of an F32 pool.</summary>
    public void Attention(ArrayView<float> queries, ArrayView<float> keys, ArrayView<float> values, DeviceBatchView batch, int rows, AttentionShape shape, ArrayView<float> output) =>
        _f32(Config(rows, shape), queries, keys, values, batch.Positions, batch.RowSequence, batch.TableStart, batch.Tables, output, shape);

    /// <summary>Attention of `rows` rows over one layer of an F16 pool (halves as their bit patterns).</summary>
    public void Attention(ArrayView<float> queries, ArrayView<ushort> keys, ArrayView<ushort> values, DeviceBatchView batch, int rows, AttentionShape shape, ArrayView<float> output) =>
        _f16(Config(rows, shape), queries, keys, values, batch.Positions, batch.RowSequence, batch.TableStart, batch.Tables, output, shape);

    /// <summary>Attention of `rows` rows over one layer of a Q8_0 pool (block_q8_0 bytes).</summary>
    public void Attention(ArrayView<float> queries, ArrayView<byte> keys, ArrayView<byte> values, DeviceBatchView batch, int rows, AttentionShape shape, ArrayView<float> output) =>
        _q8_0(Config(rows, shape), queries, keys, values, batch.Positions, batch.RowSequence, batch.TableStart, batch.Tables, output, shape);

    KernelConfig Config(int rows, AttentionShape shape)
    {
        if (shape.HeadDim > MaxHeadDim || shape.ValueDim > MaxHeadDim)
            throw new NotSupportedException($"the GPU attention kernel supports heads up to {MaxHeadDim} wide, this model has {Math.Max(shape.HeadDim, shape.ValueDim)}; run with --device cpu");
        return new KernelConfig(rows * shape.Heads, _shape.GroupSize);
    }

    static void AttentionKernel<TRaw, TElement>(ArrayView<float> queries, ArrayView<TRaw> keys, ArrayView<TRaw> values,
        ArrayView<int> positions, ArrayView<int> rowSequence, ArrayView<int> tableStart, ArrayView<int> tables, ArrayView<float> output, AttentionShape s)
        where TRaw : unmanaged where TElement : struct, IKvElement<TRaw>
    {
        var query = SharedMemory.Allocate<float>(MaxHeadDim);
        var accumulator = SharedMemory.Allocate<float>(MaxHeadDim);
        var weights = SharedMemory.Allocate<float>(GroupShape.MaxGroupSize);
        var scratch = SharedMemory.Allocate<float>(GroupShape.MaxGroupSize);
        var slots = SharedMemory.Allocate<int>(GroupShape.MaxGroupSize);
        var element = default(TElement);

        int item = Grid.IdxX, lane = Group.IdxX, size = Group.DimX;
        int row = item / s.Heads, head = item % s.Heads, kvHead = head / s.Group;
        int length = positions[row] + 1; // causal: a row sees its own position and everything before it
        int table = tableStart[rowSequence[row]];
        int keyOffset = kvHead * s.HeadDim, valueOffset = kvHead * s.ValueDim;

        for (int d = lane; d < s.HeadDim; d += size) query[d] = queries[(long)item * s.HeadDim + d];
        for (int d = lane; d < s.ValueDim; d += size) accumulator[d] = 0f;
        Group.Barrier();

        // Every thread holds the same running maximum and sum: both come out of group-wide reductions.
        float runningMax = float.NegativeInfinity, runningSum = 0f;
        for (int tile = 0; tile < length; tile += size)
        {
            int key = tile + lane;
            float score = float.NegativeInfinity;
            if (key < length)
            {
                int slot = tables[table + key / s.BlockTokens] * s.BlockTokens + key % s.BlockTokens;
                slots[lane] = slot;
                float dot = 0f;
                for (int d = 0; d < s.HeadDim; d++) dot += query[d] * element.Load(keys, slot, s.KeyWidth, keyOffset + d);
                score = dot * s.Scale;
            }
            float newMax = XMath.Max(runningMax, GroupReduction.Max(scratch, score));
            float weight = key < length ? XMath.Exp(score - newMax) : 0f;
            weights[lane] = weight;
            float tileSum = GroupReduction.Sum(scratch, weight); // its barriers also publish `weights` and `slots`
            float rescale = runningMax == float.NegativeInfinity ? 0f : XMath.Exp(runningMax - newMax);
            runningSum = runningSum * rescale + tileSum;
            runningMax = newMax;

            int tileLength = XMath.Min(size, length - tile);
            for (int d = lane; d < s.ValueDim; d += size)
            {
                float sum = accumulator[d] * rescale;
                for (int j = 0; j < tileLength; j++)
                    sum += weights[j] * element.Load(values, slots[j], s.ValueWidth, valueOffset + d);
                accumulator[d] = sum;
            }
            Group.Barrier(); // `weights` and `slots` are rewritten by the next tile
        }

        for (int d = lane; d < s.ValueDim; d += size)
            output[(long)item * s.ValueDim + d] = accumulator[d] / runningSum;
    }
}
