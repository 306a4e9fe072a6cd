using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels;

/// <summary>
/// Causal grouped-query attention over the KV cache, flash-attention style: one group per (query token, head)
/// walks the keys in tiles of one key per thread, keeps a running maximum and a running sum of the softmax
/// (the "online softmax"), and rescales its output accumulator whenever the maximum grows, so the scores of
/// the whole context are never stored. The same kernel serves the prompt (many query rows) and decode (one).
///
/// Query head h reads KV head h / (heads / kvHeads), as the CPU backend. Differences from the CPU backend:
/// the normalization happens once at the end instead of per score, and sums are in tree order, so outputs
/// agree to float rounding (a few ulps times the context length), not bit for bit.
/// </summary>
internal sealed class AttentionKernels
{
    /// <summary>The widest head (query/key or value) the kernel keeps in shared memory.</summary>
    public const int MaxHeadDim = 256;

    readonly GroupShape _shape;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape> _attention;

    /// <summary>Sizes of one call: query rows start at position Start; KeyWidth/ValueWidth are the cache rows.</summary>
    public readonly record struct AttentionShape(int Start, int Heads, int Group, int HeadDim, int ValueDim, int KeyWidth, int ValueWidth, float Scale);

    public AttentionKernels(Accelerator accelerator, GroupShape shape)
    {
        _shape = shape;
        _attention = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape>(AttentionKernel);
    }

    public void Attention(ArrayView<float> queries, ArrayView<float> keys, ArrayView<float> values, int rows, AttentionShape shape, ArrayView<float> output)
    {
        if (shape.HeadDim > MaxHeadDim || shape.ValueDim > MaxHeadDim)
            throw new NotSupportedException($"the GPU attention kernel supports heads up to {MaxHeadDim} wide, this model has {Math.Max(shape.HeadDim, shape.ValueDim)}; run with --device cpu");
        _attention(new KernelConfig(rows * shape.Heads, _shape.GroupSize), queries, keys, values, output, shape);
    }

    static void AttentionKernel(ArrayView<float> queries, ArrayView<float> keys, ArrayView<float> values, ArrayView<float> output, AttentionShape s)
    {
        var query = SharedMemory.Allocate<float>(MaxHeadDim);
        var accumulator = SharedMemory.Allocate<float>(MaxHeadDim);
        var weights = SharedMemory.Allocate<float>(GroupShape.MaxGroupSize);
        var scratch = SharedMemory.Allocate<float>(GroupShape.MaxGroupSize);

        int item = Grid.IdxX, lane = Group.IdxX, size = Group.DimX;
        int token = item / s.Heads, head = item % s.Heads, kvHead = head / s.Group;
        int length = s.Start + token + 1; // causal: a token sees itself and everything before it
        long keyOffset = (long)kvHead * s.HeadDim, valueOffset = (long)kvHead * s.ValueDim;

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
                float dot = 0f;
                long row = (long)key * s.KeyWidth + keyOffset;
                for (int d = 0; d < s.HeadDim; d++) dot += query[d] * keys[row + d];
                score = dot * s.Scale;
            }
            float newMax = XMath.Max(runningMax, GroupReduction.Max(scratch, score));
            float weight = key < length ? XMath.Exp(score - newMax) : 0f;
            weights[lane] = weight;
            float tileSum = GroupReduction.Sum(scratch, weight); // its barriers also publish `weights`
            float rescale = runningMax == float.NegativeInfinity ? 0f : XMath.Exp(runningMax - newMax);
            runningSum = runningSum * rescale + tileSum;
            runningMax = newMax;

            int tileLength = XMath.Min(size, length - tile);
            for (int d = lane; d < s.ValueDim; d += size)
            {
                float sum = accumulator[d] * rescale;
                for (int j = 0; j < tileLength; j++)
                    sum += weights[j] * values[(long)(tile + j) * s.ValueWidth + valueOffset + d];
                accumulator[d] = sum;
            }
            Group.Barrier(); // `weights` is rewritten by the next tile
        }

        for (int d = lane; d < s.ValueDim; d += size)
            output[(long)item * s.ValueDim + d] = accumulator[d] / runningSum;
    }
}
