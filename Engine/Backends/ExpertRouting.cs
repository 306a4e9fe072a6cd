using Engine.Models;

namespace Engine.Backends;

/// <summary>How one model's mixture-of-experts layers route, and the largest batch a routing table must hold:
/// each token picks <see cref="ExpertsPerToken"/> of <see cref="Experts"/> experts; <see cref="MaxWidth"/> is the
/// widest input or output row an expert matrix has (a backend may stage rows of it).</summary>
internal sealed record ExpertRoutingShape(int Experts, int ExpertsPerToken, ExpertGating Gating, bool NormalizeWeights, int MaxRows, int MaxWidth)
{
    public static ExpertRoutingShape Of(ModelConfig config, int maxRows) => new(
        config.ExpertCount, config.ExpertsPerToken, config.ExpertGating, config.NormalizeExpertWeights, maxRows,
        Math.Max(config.EmbeddingLength, config.ExpertFeedForwardLength));

    /// <summary>Slots of a full batch: one per (token, chosen expert).</summary>
    public int MaxSlots => MaxRows * ExpertsPerToken;
}

/// <summary>The routing decisions of one batch, held where the backend computes (device memory on a GPU):
/// for token t and slot s &lt; k, chosen[t*k + s] is an expert and weight[t*k + s] its weight, slot 0 the most
/// probable. Created by <see cref="IBackend.CreateExpertRouting"/>, filled by <see cref="IBackend.RouteExperts"/>,
/// read by the expert matmuls and <see cref="IBackend.CombineExperts"/>.</summary>
internal abstract class ExpertRouting(ExpertRoutingShape shape)
{
    public ExpertRoutingShape Shape { get; } = shape;

    /// <summary>Tokens of the batch routed last (0 before the first).</summary>
    public int Rows { get; private set; }

    /// <summary>Throws unless a batch of `rows` tokens fits this table.</summary>
    public void CheckRows(int rows)
    {
        if (rows <= 0 || rows > Shape.MaxRows)
            throw new ArgumentOutOfRangeException(nameof(rows), rows, $"a routing table holds 1..{Shape.MaxRows} tokens");
    }

    /// <summary>Records that the backend has routed a batch of `rows` tokens (already checked) into this table.</summary>
    public void MarkRouted(int rows) => Rows = rows;

    /// <summary>Throws unless this table holds the routing of a batch of `rows` tokens.</summary>
    public void CheckRouted(int rows)
    {
        if (rows != Rows) throw new InvalidOperationException($"the routing holds {Rows} tokens, not {rows}: route the batch first");
    }

    /// <summary>Throws unless `w` has one matrix per expert of this routing, no wider than its staging rows.</summary>
    public void CheckExperts(ExpertMatrices w)
    {
        if (w.Count != Shape.Experts) throw new ArgumentException($"{w.Name} has {w.Count} experts, the routing {Shape.Experts}", nameof(w));
        if (Math.Max(w.Cols, w.Rows) > Shape.MaxWidth) throw new ArgumentException($"{w} is wider than the routing's {Shape.MaxWidth}", nameof(w));
    }
}
