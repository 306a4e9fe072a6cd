using Engine.Models;

namespace Engine.Backends;

/// <summary>A routing table in host memory, for backends whose activations live there (the CPU). Routing runs
/// <see cref="ExpertRouter"/> token by token; the expert matmuls then go expert by expert, not token by token:
/// the slots routed to expert e are gathered into a contiguous sub-batch, the expert's matrix multiplies them in
/// one batched matmul (so its weights are read once per batch), and the results go back to their slots. Experts
/// no token chose are never touched.</summary>
internal sealed class HostExpertRouting : ExpertRouting
{
    // Per token: n_expert probabilities; k choices and weights (slot order).
    readonly int[] _chosen;
    readonly float[] _weights;
    // The same choices grouped by expert (a counting sort): expert e's slots (t*k + s) are
    // _slotsByExpert[_expertStart[e] .. _expertStart[e + 1]), tokens ascending.
    readonly int[] _expertStart, _slotsByExpert;
    // One expert's sub-batch, in the backend's memory: inputs and outputs of up to MaxRows rows of MaxWidth.
    readonly ActivationBuffer _expertInput, _expertOutput;

    /// <summary>Floats the constructor allocates in the backend.</summary>
    public static long Floats(ExpertRoutingShape shape) => 2L * shape.MaxRows * shape.MaxWidth;

    public HostExpertRouting(ExpertRoutingShape shape, IBackend backend) : base(shape)
    {
        _chosen = new int[shape.MaxSlots];
        _weights = new float[shape.MaxSlots];
        _expertStart = new int[shape.Experts + 1];
        _slotsByExpert = new int[shape.MaxSlots];
        // A token picks an expert at most once, so no expert gets more than MaxRows slots.
        _expertInput = backend.Allocate("ffn_moe_expert_input", shape.MaxRows * shape.MaxWidth);
        _expertOutput = backend.Allocate("ffn_moe_expert_output", shape.MaxRows * shape.MaxWidth);
    }

    public ReadOnlySpan<int> Chosen => _chosen.AsSpan(0, Rows * Shape.ExpertsPerToken);
    public ReadOnlySpan<float> Weights => _weights.AsSpan(0, Rows * Shape.ExpertsPerToken);

    /// <summary>Routes `rows` tokens from their router logits (rows x n_expert), writing their probabilities.</summary>
    public void Route(ReadOnlySpan<float> logits, int rows, Span<float> probabilities)
    {
        CheckRows(rows);
        int experts = Shape.Experts, k = Shape.ExpertsPerToken;
        for (int t = 0; t < rows; t++)
        {
            var p = probabilities.Slice(t * experts, experts);
            var chosen = _chosen.AsSpan(t * k, k);
            ExpertRouter.Probabilities(logits.Slice(t * experts, experts), Shape.Gating, p);
            ExpertRouter.TopK(p, chosen);
            ExpertRouter.Weights(p, chosen, Shape.NormalizeWeights, _weights.AsSpan(t * k, k));
        }
        MarkRouted(rows);
        GroupByExpert();
    }

    void GroupByExpert()
    {
        var start = _expertStart.AsSpan();
        start.Clear();
        foreach (int e in Chosen) start[e + 1]++;
        for (int e = 0; e < Shape.Experts; e++) start[e + 1] += start[e];
        Span<int> next = Shape.Experts <= 1024 ? stackalloc int[Shape.Experts] : new int[Shape.Experts];
        start[..Shape.Experts].CopyTo(next);
        for (int slot = 0; slot < Chosen.Length; slot++) _slotsByExpert[next[_chosen[slot]]++] = slot;
    }

    /// <summary><see cref="IBackend.ExpertMatMul"/> on `backend`, expert by expert: gather, one batched matmul,
    /// scatter (through backend.Copy and backend.MatMul, so a wrapping backend sees every expert matmul).</summary>
    public void MatMul(IBackend backend, ExpertMatrices w, ActivationBuffer x, int rows, bool inputPerSlot, ActivationBuffer y)
    {
        CheckRouted(rows);
        CheckExperts(w);
        int k = Shape.ExpertsPerToken, cols = w.Cols, outputs = w.Rows;
        for (int e = 0; e < Shape.Experts; e++)
        {
            int first = _expertStart[e], count = _expertStart[e + 1] - first;
            if (count == 0) continue; // no token chose it: its weights stay unread
            var slots = _slotsByExpert.AsSpan(first, count);
            for (int i = 0; i < count; i++)
                backend.Copy(x, (inputPerSlot ? slots[i] : slots[i] / k) * cols, _expertInput, i * cols, cols);
            backend.MatMul(w[e], _expertInput, count, _expertOutput);
            for (int i = 0; i < count; i++)
                backend.Copy(_expertOutput, i * outputs, y, slots[i] * outputs, outputs);
        }
    }

    public void Read(int rows, Span<int> chosen, Span<float> weights)
    {
        CheckRouted(rows);
        Chosen.CopyTo(chosen);
        Weights.CopyTo(weights);
    }
}
