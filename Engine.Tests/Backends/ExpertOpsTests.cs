using Engine.Backends;
using Engine.Backends.Cpu;
using Engine.Formats;
using Engine.Models;
using Engine.Tests.Gpu;
using Engine.Tests.Support;

namespace Engine.Tests.Backends;

/// <summary>The CPU backend's mixture-of-experts operations against plain references: routing against
/// <see cref="ExpertRouter"/> token by token, each expert matmul slot against the backend's own matmul of that one
/// row by the chosen expert (bit for bit: grouping tokens by expert must not change a value), and the weighted
/// sums against the products added in slot order.</summary>
public class ExpertOpsTests
{
    const int Experts = 6, K = 2, Rows = 7;

    static ExpertRoutingShape Shape(bool normalize, ExpertGating gating = ExpertGating.Softmax) => new(Experts, K, gating, normalize, MaxRows: 8, MaxWidth: 256);

    [Theory]
    [InlineData(true, nameof(ExpertGating.Softmax))]
    [InlineData(false, nameof(ExpertGating.Softmax))]
    [InlineData(true, nameof(ExpertGating.Sigmoid))]
    public void Routing_matches_the_router_token_by_token(bool normalize, string gatingName)
    {
        var gating = Enum.Parse<ExpertGating>(gatingName); // ExpertGating is internal: a public theory takes its name
        using var backend = new CpuBackend(2);
        var logits = TestWeights.Random(Rows * Experts, seed: 31, scale: 3f);
        var shape = Shape(normalize, gating);
        var actual = backend.Route(backend.CreateExpertRouting(shape), logits, Rows);
        var expected = ExpertRoutingHelpers.Expected(shape, logits, Rows);
        actual.Probabilities.Should().Equal(expected.Probabilities);
        actual.Chosen.Should().Equal(expected.Chosen);
        actual.Weights.Should().Equal(expected.Weights);
    }

    [Theory]
    [InlineData(GgmlType.F32, 1)]
    [InlineData(GgmlType.F32, Rows)]
    [InlineData(GgmlType.Q8_0, Rows)]
    [InlineData(GgmlType.Q4_K, 1)]
    [InlineData(GgmlType.Q4_K, Rows)]
    public void Expert_matmul_gives_each_slot_its_chosen_experts_product(GgmlType type, int rows)
    {
        using var backend = new CpuBackend(2);
        using var experts = new TestExpertStack(type, Experts, rows: 24, cols: TestExpertStack.ColsFor(type), seed: 40);
        int cols = experts.Cols, outputs = experts.Rows;
        var routing = backend.CreateExpertRouting(Shape(normalize: true));
        var chosen = backend.Route(routing, TestWeights.Random(rows * Experts, seed: 41, scale: 3f), rows).Chosen;

        foreach (bool inputPerSlot in new[] { false, true })
        {
            var x = TestWeights.Random((inputPerSlot ? rows * K : rows) * cols, seed: 42);
            var y = backend.Allocate("y", rows * K * outputs);
            backend.ExpertMatMul(experts.Stack, routing, backend.Load(x), rows, inputPerSlot, y);
            var actual = backend.ReadAll(y, rows * K * outputs);

            var one = backend.Allocate("one", cols);
            var expected = backend.Allocate("expected", outputs);
            for (int slot = 0; slot < rows * K; slot++)
            {
                int input = inputPerSlot ? slot : slot / K;
                backend.Write(one, 0, x.AsSpan(input * cols, cols));
                backend.MatMul(experts.Stack[chosen[slot]], one, 1, expected);
                actual.Skip(slot * outputs).Take(outputs).Should().Equal(backend.ReadAll(expected, outputs), $"slot {slot} (expert {chosen[slot]}, input row {input})");
            }
        }
    }

    [Fact]
    public void Combine_adds_the_weighted_expert_outputs_in_slot_order_and_the_gated_shared_expert()
    {
        using var backend = new CpuBackend(2);
        const int width = 9;
        var routing = backend.CreateExpertRouting(Shape(normalize: true));
        var weights = backend.Route(routing, TestWeights.Random(Rows * Experts, seed: 50, scale: 3f), Rows).Weights;
        var outputs = TestWeights.Random(Rows * K * width, seed: 51);
        var combined = backend.Allocate("out", Rows * width);
        backend.CombineExperts(backend.Load(outputs), routing, Rows, width, combined);

        var expected = new float[Rows * width];
        for (int t = 0; t < Rows; t++)
            for (int c = 0; c < width; c++)
            {
                float sum = weights[t * K] * outputs[t * K * width + c];
                for (int slot = 1; slot < K; slot++)
                {
                    float product = weights[t * K + slot] * outputs[(t * K + slot) * width + c];
                    sum += product;
                }
                expected[t * width + c] = sum;
            }
        backend.ReadAll(combined, Rows * width).Should().Equal(expected);

        var gates = TestWeights.Random(Rows, seed: 52, scale: 4f);
        var shared = TestWeights.Random(Rows * width, seed: 53);
        backend.AddSigmoidGated(backend.Load(gates), backend.Load(shared), Rows, width, combined);
        for (int i = 0; i < expected.Length; i++)
        {
            float product = 1f / (1f + MathF.Exp(-gates[i / width])) * shared[i];
            expected[i] += product;
        }
        backend.ReadAll(combined, Rows * width).Should().Equal(expected);
    }
}
