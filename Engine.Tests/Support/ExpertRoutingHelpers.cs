using Engine.Backends;
using Engine.Models;

namespace Engine.Tests.Support;

/// <summary>What the mixture-of-experts tests of every backend share: buffers in and out, a routed batch read back
/// to the host, and the routing <see cref="ExpertRouter"/> gives token by token (the reference).</summary>
static class ExpertRoutingHelpers
{
    public sealed record Routed(float[] Probabilities, int[] Chosen, float[] Weights);

    public static ActivationBuffer Load(this IBackend backend, float[] values)
    {
        var buffer = backend.Allocate("in", values.Length);
        backend.Write(buffer, 0, values);
        return buffer;
    }

    public static float[] ReadAll(this IBackend backend, ActivationBuffer buffer, int length)
    {
        var values = new float[length];
        backend.Read(buffer, 0, values);
        return values;
    }

    /// <summary>Routes `rows` tokens of `logits` on the backend and reads back what it decided.</summary>
    public static Routed Route(this IBackend backend, ExpertRouting routing, float[] logits, int rows)
    {
        int experts = routing.Shape.Experts, slots = rows * routing.Shape.ExpertsPerToken;
        var probabilities = backend.Allocate("ffn_moe_probs", rows * experts);
        backend.RouteExperts(backend.Load(logits), rows, routing, probabilities);
        var chosen = new int[slots];
        var weights = new float[slots];
        backend.ReadRouting(routing, rows, chosen, weights);
        return new Routed(backend.ReadAll(probabilities, rows * experts), chosen, weights);
    }

    /// <summary>The reference: <see cref="ExpertRouter"/> on each token's logits.</summary>
    public static Routed Expected(ExpertRoutingShape shape, float[] logits, int rows)
    {
        int experts = shape.Experts, k = shape.ExpertsPerToken;
        var expected = new Routed(new float[rows * experts], new int[rows * k], new float[rows * k]);
        for (int t = 0; t < rows; t++)
        {
            var p = expected.Probabilities.AsSpan(t * experts, experts);
            var chosen = expected.Chosen.AsSpan(t * k, k);
            ExpertRouter.Probabilities(logits.AsSpan(t * experts, experts), shape.Gating, p);
            ExpertRouter.TopK(p, chosen);
            ExpertRouter.Weights(p, chosen, shape.NormalizeWeights, expected.Weights.AsSpan(t * k, k));
        }
        return expected;
    }
}
