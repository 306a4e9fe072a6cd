namespace Engine.Sampling;

/// <summary>
/// Partial selection of the K best candidates without sorting the whole vocabulary: a bounded min-heap holds the
/// K best seen so far (root = the worst of them), each further candidate is compared with the root only, and the
/// heap is finally heap-sorted in place. Cost O(n log K) worst case, about n comparisons on typical logits, no
/// allocation, and no pathological inputs (unlike quickselect).
/// Order is total — higher logit first, equal logits by lower token id — so the result never depends on the
/// order the candidates arrive in.
/// </summary>
internal static class TopSelector
{
    /// <summary>
    /// Writes the <paramref name="k"/> best of (<paramref name="ids"/>, <paramref name="logits"/>) into the
    /// destination spans, best first. Returns the number written (min(k, n)).
    /// </summary>
    public static int Select(ReadOnlySpan<int> ids, ReadOnlySpan<float> logits, int k, Span<int> dstIds, Span<float> dstLogits)
    {
        if (ids.Length != logits.Length) throw new ArgumentException("ids and logits differ in length");
        k = Math.Min(k, ids.Length);
        if (k <= 0) return 0;
        if (dstIds.Length < k || dstLogits.Length < k) throw new ArgumentException("destination shorter than k");
        dstIds = dstIds[..k];
        dstLogits = dstLogits[..k];

        for (var i = 0; i < k; i++)
        {
            dstIds[i] = ids[i];
            dstLogits[i] = logits[i];
            SiftUp(dstIds, dstLogits, i);
        }
        for (var i = k; i < ids.Length; i++)
        {
            // Most candidates fail this single comparison with the worst kept one.
            if (!Better(logits[i], ids[i], dstLogits[0], dstIds[0])) continue;
            dstIds[0] = ids[i];
            dstLogits[0] = logits[i];
            SiftDown(dstIds, dstLogits, 0, k);
        }
        // Heap sort: move the current worst to the end, shrink; leaves the best at index 0.
        for (var end = k - 1; end > 0; end--)
        {
            Swap(dstIds, dstLogits, 0, end);
            SiftDown(dstIds, dstLogits, 0, end);
        }
        return k;
    }

    /// <summary>The total order used everywhere in the sampler: larger logit, then smaller id.</summary>
    public static bool Better(float logitA, int idA, float logitB, int idB) =>
        logitA > logitB || (logitA == logitB && idA < idB);

    // Min-heap with respect to Better: a parent is never better than its children.
    static void SiftUp(Span<int> ids, Span<float> logits, int i)
    {
        while (i > 0)
        {
            var parent = (i - 1) / 2;
            if (!Better(logits[parent], ids[parent], logits[i], ids[i])) return;
            Swap(ids, logits, i, parent);
            i = parent;
        }
    }

    static void SiftDown(Span<int> ids, Span<float> logits, int i, int count)
    {
        while (true)
        {
            var worst = i;
            var left = 2 * i + 1;
            var right = left + 1;
            if (left < count && Better(logits[worst], ids[worst], logits[left], ids[left])) worst = left;
            if (right < count && Better(logits[worst], ids[worst], logits[right], ids[right])) worst = right;
            if (worst == i) return;
            Swap(ids, logits, i, worst);
            i = worst;
        }
    }

    static void Swap(Span<int> ids, Span<float> logits, int a, int b)
    {
        (ids[a], ids[b]) = (ids[b], ids[a]);
        (logits[a], logits[b]) = (logits[b], logits[a]);
    }
}
