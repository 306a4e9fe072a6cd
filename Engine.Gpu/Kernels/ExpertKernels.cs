using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels;

/// <summary>The mixture-of-experts steps around the expert matmuls, on the device so that routing never goes
/// through the host: the router (probabilities, top-k, weights), sorting a prompt's slots by expert, moving rows
/// to and from that order, and the weighted sum of a token's experts. A slot is one (token, chosen expert) pair,
/// s = t * k + slot.</summary>
internal sealed class ExpertKernels
{
    /// <summary>The routing rule: k of n experts, softmax (0) or sigmoid (1) gating, renormalized weights (1) or not.</summary>
    public readonly record struct Rule(int Experts, int K, int Sigmoid, int Normalize);

    /// <summary>llama.cpp clamps the sum of the chosen probabilities to the smallest normal F16 before dividing.</summary>
    const float MinimumWeightSum = 6.103515625e-5f;

    /// <summary>Most experts a layer may have (llama.cpp's limit, checked when a model is loaded): the routing kernel
    /// keeps one "already chosen" flag per expert in shared memory.</summary>
    public const int MaxExperts = Engine.Models.ModelConfigValidation.MaxExperts;

    readonly int _groupSize;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, Rule> _route;
    readonly Action<Index1D, ArrayView<int>, int, int, ArrayView<int>, ArrayView<int>, ArrayView<int>, int> _sort;
    readonly Action<Index1D, ArrayView<float>, ArrayView<int>, int, int, ArrayView<float>> _gather;
    readonly Action<Index1D, ArrayView<float>, ArrayView<int>, int, ArrayView<float>> _scatter;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, int, ArrayView<float>> _combine;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, ArrayView<float>> _addSigmoidGated;

    public ExpertKernels(Accelerator accelerator, GroupShape shape)
    {
        _groupSize = shape.GroupSize;
        _route = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, Rule>(RouteKernel);
        _sort = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, int, int, ArrayView<int>, ArrayView<int>, ArrayView<int>, int>(SortKernel);
        _gather = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, int, int, ArrayView<float>>(GatherKernel);
        _scatter = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, int, ArrayView<float>>(ScatterKernel);
        _combine = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int, ArrayView<float>>(CombineKernel);
        _addSigmoidGated = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, ArrayView<float>>(AddSigmoidGatedKernel);
    }

    /// <summary>For each of `rows` tokens: probabilities from its logits, its k most probable experts into
    /// chosen[t*k ..] (ties keep the lower expert first) and their weights into weights[t*k ..]. One group per
    /// token: its threads share the experts, and each of the k choices is one group-wide arg-max.</summary>
    public void Route(ArrayView<float> logits, int rows, ArrayView<float> probabilities, ArrayView<int> chosen, ArrayView<float> weights, Rule rule)
    {
        if (rule.Experts > MaxExperts) throw new ArgumentOutOfRangeException(nameof(rule), rule.Experts, $"at most {MaxExperts} experts");
        _route(new KernelConfig(rows, _groupSize), logits, probabilities, chosen, weights, rule);
    }

    /// <summary>Sorts `slots` slots by expert (tokens ascending within one): sortedSlots gets each expert's slots in a
    /// run padded with -1 to whole segments of <see cref="ExpertSegment.Tokens"/>, segmentExpert the expert of each
    /// segment (-1 for every segment past the last used, up to `segments`, whose slots are -1 too). `counts` is scratch of `experts` ints.
    /// One thread: a few thousand steps at most, far cheaper than a round trip to the host.</summary>
    public void Sort(ArrayView<int> chosen, int slots, int experts, ArrayView<int> counts, ArrayView<int> sortedSlots, ArrayView<int> segmentExpert, int segments) =>
        _sort(1, chosen, slots, experts, counts, sortedSlots, segmentExpert, segments);

    /// <summary>sorted[p] = x[sortedSlots[p] / slotsPerInput] for `tokens` sorted rows of `width` (zeros for padding).</summary>
    public void Gather(ArrayView<float> x, ArrayView<int> sortedSlots, int tokens, int width, int slotsPerInput, ArrayView<float> sorted) =>
        _gather(tokens * width, x, sortedSlots, width, slotsPerInput, sorted);

    /// <summary>y[sortedSlots[p]] = sorted[p] for `tokens` sorted rows of `width` (padding dropped).</summary>
    public void Scatter(ArrayView<float> sorted, ArrayView<int> sortedSlots, int tokens, int width, ArrayView<float> y) =>
        _scatter(tokens * width, sorted, sortedSlots, width, y);

    /// <summary>output[t] = Σ over slots in order of weight * expertOutputs[t*k + slot], for rows of `width`.</summary>
    public void Combine(ArrayView<float> expertOutputs, ArrayView<float> weights, int rows, int k, int width, ArrayView<float> output) =>
        _combine(rows * width, expertOutputs, weights, k, width, output);

    /// <summary>dst[t] += sigmoid(gateLogits[t]) * src[t] for `rows` rows of `width`.</summary>
    public void AddSigmoidGated(ArrayView<float> gateLogits, ArrayView<float> src, int rows, int width, ArrayView<float> dst) =>
        _addSigmoidGated(rows * width, gateLogits, src, width, dst);

    static void RouteKernel(ArrayView<float> logits, ArrayView<float> probabilities, ArrayView<int> chosen, ArrayView<float> weights, Rule rule)
    {
        var scratch = SharedMemory.Allocate<float>(GroupShape.MaxGroupSize);
        var bestValues = SharedMemory.Allocate<float>(GroupShape.MaxGroupSize);
        var bestExperts = SharedMemory.Allocate<int>(GroupShape.MaxGroupSize);
        var taken = SharedMemory.Allocate<int>(MaxExperts);
        int lane = Group.IdxX, size = Group.DimX;
        long first = (long)Grid.IdxX * rule.Experts;

        if (rule.Sigmoid != 0)
        {
            for (int e = lane; e < rule.Experts; e += size) probabilities[first + e] = 1f / (1f + XMath.Exp(-logits[first + e]));
        }
        else
        {
            // Softmax as ggml: subtract the maximum, exponentiate, multiply by the reciprocal of the sum (summed in
            // float over the group here, in double on the CPU: the weights agree to rounding).
            float localMax = float.NegativeInfinity;
            for (int e = lane; e < rule.Experts; e += size) localMax = XMath.Max(localMax, logits[first + e]);
            float max = GroupReduction.Max(scratch, localMax);
            float localSum = 0;
            for (int e = lane; e < rule.Experts; e += size)
            {
                float p = XMath.Exp(logits[first + e] - max);
                probabilities[first + e] = p;
                localSum += p;
            }
            float scale = 1f / GroupReduction.Sum(scratch, localSum);
            for (int e = lane; e < rule.Experts; e += size) probabilities[first + e] *= scale;
        }
        for (int e = lane; e < rule.Experts; e += size) taken[e] = 0;
        Group.Barrier();

        long slots = (long)Grid.IdxX * rule.K;
        for (int slot = 0; slot < rule.K; slot++)
        {
            // This thread's best untaken expert (strided, ascending: a strict > keeps the lower of equal ones)...
            int best = -1;
            float bestP = 0;
            for (int e = lane; e < rule.Experts; e += size)
            {
                float p = probabilities[first + e];
                if (taken[e] == 0 && (best < 0 || p > bestP)) { best = e; bestP = p; }
            }
            // ...then the group's: the higher probability, or on a tie the lower expert (-1: none).
            bestValues[lane] = bestP;
            bestExperts[lane] = best;
            Group.Barrier();
            for (int stride = size / 2; stride > 0; stride >>= 1)
            {
                if (lane < stride)
                {
                    int other = bestExperts[lane + stride], mine = bestExperts[lane];
                    float otherP = bestValues[lane + stride], mineP = bestValues[lane];
                    if (other >= 0 && (mine < 0 || otherP > mineP || (otherP == mineP && other < mine)))
                    {
                        bestExperts[lane] = other;
                        bestValues[lane] = otherP;
                    }
                }
                Group.Barrier();
            }
            if (lane == 0)
            {
                chosen[slots + slot] = bestExperts[0];
                weights[slots + slot] = bestValues[0];
                taken[bestExperts[0]] = 1;
            }
            Group.Barrier();
        }
        if (rule.Normalize == 0 || lane != 0) return;
        float chosenSum = 0;
        for (int slot = 0; slot < rule.K; slot++) chosenSum += weights[slots + slot];
        float divisor = XMath.Max(chosenSum, MinimumWeightSum);
        for (int slot = 0; slot < rule.K; slot++) weights[slots + slot] /= divisor;
    }

    static void SortKernel(Index1D index, ArrayView<int> chosen, int slots, int experts, ArrayView<int> counts, ArrayView<int> sortedSlots, ArrayView<int> segmentExpert, int segments)
    {
        const int Segment = ExpertSegment.Tokens;
        for (int e = 0; e < experts; e++) counts[e] = 0;
        for (int s = 0; s < slots; s++) counts[chosen[s]]++;
        // counts[e] becomes the first sorted position of expert e's run; segments of its padded run are its.
        int next = 0;
        for (int e = 0; e < experts; e++)
        {
            int count = counts[e];
            counts[e] = next;
            int padded = (count + Segment - 1) / Segment * Segment;
            for (int p = next + count; p < next + padded; p++) sortedSlots[p] = -1;
            for (int g = next / Segment; g < (next + padded) / Segment; g++) segmentExpert[g] = e;
            next += padded;
        }
        // Past the last used segment: no expert, and no slot (gather and scatter run over every segment).
        for (int g = next / Segment; g < segments; g++) segmentExpert[g] = -1;
        for (int p = next; p < segments * Segment; p++) sortedSlots[p] = -1;
        for (int s = 0; s < slots; s++) sortedSlots[counts[chosen[s]]++] = s;
    }

    static void GatherKernel(Index1D i, ArrayView<float> x, ArrayView<int> sortedSlots, int width, int slotsPerInput, ArrayView<float> sorted)
    {
        int slot = sortedSlots[i / width];
        sorted[i] = slot < 0 ? 0f : x[(long)(slot / slotsPerInput) * width + i % width];
    }

    static void ScatterKernel(Index1D i, ArrayView<float> sorted, ArrayView<int> sortedSlots, int width, ArrayView<float> y)
    {
        int slot = sortedSlots[i / width];
        if (slot >= 0) y[(long)slot * width + i % width] = sorted[i];
    }

    static void CombineKernel(Index1D i, ArrayView<float> expertOutputs, ArrayView<float> weights, int k, int width, ArrayView<float> output)
    {
        int t = i / width, c = i % width;
        long first = (long)t * k;
        float sum = weights[first] * expertOutputs[first * width + c];
        for (int slot = 1; slot < k; slot++)
        {
            // The product is rounded before the sum, as ggml's mul then add (and the CPU backend).
            float product = weights[first + slot] * expertOutputs[(first + slot) * width + c];
            sum += product;
        }
        output[i] = sum;
    }

    static void AddSigmoidGatedKernel(Index1D i, ArrayView<float> gateLogits, ArrayView<float> src, int width, ArrayView<float> dst)
    {
        float gate = 1f / (1f + XMath.Exp(-gateLogits[i / width]));
        float product = gate * src[i];
        dst[i] += product;
    }
}
