using Engine.Backends;
using Engine.Backends.Cpu;
using Engine.Formats;
using Engine.Gpu;
using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Gpu;

/// <summary>The GPU backend's mixture-of-experts operations, which keep the routing on the device:
///   routing against <see cref="ExpertRouter"/>: the same experts in the same order, probabilities and weights
///   within 1e-6 (the device sums the softmax in float, the router in double);
///   expert matmuls of every weight type, decode (one token: slot by slot) and prompt (slots sorted by expert into
///   padded segments, unused experts skipped), each slot against the double dot of its chosen expert's reference
///   weights, |gpu - exact| &lt;= 1e-4 * Σ|w x| + 1e-6 as in the dense kernel tests;
///   the weighted sum and the gated shared expert against the CPU backend within 1e-6.</summary>
[Collection(GpuCollection.Name)]
public sealed class GpuExpertTests(GpuTestDevice device) : IDisposable
{
    const int Experts = 6, K = 2;
    readonly GpuBackend _gpu = new(device.Device, ownsDevice: false);

    public void Dispose() => _gpu.Dispose();

    static ExpertRoutingShape Shape(int maxRows, bool normalize = true, ExpertGating gating = ExpertGating.Softmax) =>
        new(Experts, K, gating, normalize, maxRows, MaxWidth: 256);

    [Theory]
    [InlineData(true, nameof(ExpertGating.Softmax))]
    [InlineData(false, nameof(ExpertGating.Softmax))]
    [InlineData(true, nameof(ExpertGating.Sigmoid))]
    public void Routing_on_the_device_matches_the_router(bool normalize, string gatingName)
    {
        var gating = Enum.Parse<ExpertGating>(gatingName); // ExpertGating is internal: a public theory takes its name
        const int rows = 9;
        var logits = TestWeights.Random(rows * Experts, seed: 60, scale: 3f);
        var shape = Shape(rows, normalize, gating);
        var actual = _gpu.Route(_gpu.CreateExpertRouting(shape), logits, rows);
        var expected = ExpertRoutingHelpers.Expected(shape, logits, rows);
        actual.Chosen.Should().Equal(expected.Chosen);
        for (int i = 0; i < expected.Probabilities.Length; i++) actual.Probabilities[i].Should().BeApproximately(expected.Probabilities[i], 1e-6f);
        for (int i = 0; i < expected.Weights.Length; i++) actual.Weights[i].Should().BeApproximately(expected.Weights[i], 1e-6f);
    }

    /// <summary>More experts than threads in a group (each thread scans several) and k = 8, with logits rounded
    /// to a coarse grid so that many probabilities tie exactly: still ExpertRouter's choices in its order.</summary>
    [Fact]
    public void Routing_many_experts_with_ties_matches_the_router()
    {
        const int rows = 5, experts = 40, k = 8;
        var logits = TestWeights.Random(rows * experts, seed: 90, scale: 2f).Select(v => MathF.Round(v * 4) / 4).ToArray();
        var shape = new ExpertRoutingShape(experts, k, ExpertGating.Softmax, NormalizeWeights: true, MaxRows: rows, MaxWidth: 16);
        var actual = _gpu.Route(_gpu.CreateExpertRouting(shape), logits, rows);
        var expected = ExpertRoutingHelpers.Expected(shape, logits, rows);
        actual.Chosen.Should().Equal(expected.Chosen);
        for (int i = 0; i < expected.Weights.Length; i++) actual.Weights[i].Should().BeApproximately(expected.Weights[i], 1e-6f);
    }

    [Fact]
    public void Ties_keep_the_lower_expert_first_on_the_device()
    {
        float[] logits = [0.5f, 2f, 2f, -1f, 2f, 0f];
        _gpu.Route(_gpu.CreateExpertRouting(Shape(1)), logits, 1).Chosen.Should().Equal(1, 2);
    }

    public static TheoryData<GgmlType, int> TypesAndRows()
    {
        var data = new TheoryData<GgmlType, int>();
        GgmlType[] types =
        [
            GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1,
            GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.IQ4_NL, GgmlType.IQ4_XS,
        ];
        foreach (var type in types)
            foreach (int rows in new[] { 1, 11 }) // a decode step; a prompt of 22 slots over several segments
                data.Add(type, rows);
        return data;
    }

    [Theory]
    [MemberData(nameof(TypesAndRows))]
    public void Expert_matmuls_read_each_slots_chosen_expert(GgmlType type, int rows)
    {
        using var experts = new TestExpertStack(type, Experts, rows: 37, cols: TestExpertStack.ColsFor(type), seed: (int)type * 10 + rows);
        int cols = experts.Cols, outputs = experts.Rows;
        var routing = _gpu.CreateExpertRouting(Shape(rows));
        var chosen = _gpu.Route(routing, TestWeights.Random(rows * Experts, seed: 61 + rows, scale: 3f), rows).Chosen;
        if (rows > 1) chosen.Distinct().Count().Should().BeLessThan(Experts + 1).And.BeGreaterThan(2, "the prompt case spreads over several experts");

        foreach (bool inputPerSlot in new[] { false, true })
        {
            var x = TestWeights.Random((inputPerSlot ? rows * K : rows) * cols, seed: 62);
            var y = _gpu.Allocate("y", rows * K * outputs);
            _gpu.ExpertMatMul(experts.Stack, routing, _gpu.Load(x), rows, inputPerSlot, y);
            var actual = _gpu.ReadAll(y, rows * K * outputs);
            for (int slot = 0; slot < rows * K; slot++)
                for (int r = 0; r < outputs; r++)
                {
                    var (exact, magnitude) = experts.Reference(chosen[slot], r, x, (inputPerSlot ? slot : slot / K) * cols);
                    Math.Abs(actual[slot * outputs + r] - exact).Should().BeLessThanOrEqualTo(1e-4 * magnitude + 1e-6,
                        $"{type} slot {slot} (expert {chosen[slot]}) row {r}, input per slot {inputPerSlot}");
                }
        }
    }

    /// <summary>The device kernels index without bounds checks, so the backend refuses buffers that are too short
    /// (and a batch the routing does not hold) before launching anything.</summary>
    [Fact]
    public void Short_buffers_and_unrouted_batches_are_refused_before_any_launch()
    {
        using var experts = new TestExpertStack(GgmlType.F32, Experts, rows: 8, cols: 16, seed: 80);
        var routing = _gpu.CreateExpertRouting(Shape(4));
        _gpu.Route(routing, TestWeights.Random(3 * Experts, seed: 81), 3);
        var y = _gpu.Allocate("y", 3 * K * 8);
        FluentActions.Invoking(() => _gpu.ExpertMatMul(experts.Stack, routing, _gpu.Allocate("x", 2 * 16), 3, false, y))
            .Should().Throw<ArgumentException>().WithMessage("*48 needed*");
        FluentActions.Invoking(() => _gpu.ExpertMatMul(experts.Stack, routing, _gpu.Allocate("x", 3 * 16), 3, true, y))
            .Should().Throw<ArgumentException>().WithMessage("*96 needed*", "each slot reads its own row");
        FluentActions.Invoking(() => _gpu.ExpertMatMul(experts.Stack, routing, _gpu.Allocate("x", 2 * 16), 2, false, y))
            .Should().Throw<InvalidOperationException>().WithMessage("*route the batch first*");
        FluentActions.Invoking(() => _gpu.CombineExperts(y, routing, 3, 9, _gpu.Allocate("out", 27)))
            .Should().Throw<ArgumentException>().WithMessage("*54 needed*");
    }

    [Fact]
    public void Combine_and_the_gated_shared_expert_match_the_cpu()
    {
        const int rows = 5, width = 13;
        var logits = TestWeights.Random(rows * Experts, seed: 70, scale: 3f);
        var outputs = TestWeights.Random(rows * K * width, seed: 71);
        var gates = TestWeights.Random(rows, seed: 72, scale: 4f);
        var shared = TestWeights.Random(rows * width, seed: 73);

        float[] Run(IBackend be)
        {
            var routing = be.CreateExpertRouting(Shape(rows));
            be.Route(routing, logits, rows);
            var output = be.Allocate("out", rows * width);
            be.CombineExperts(be.Load(outputs), routing, rows, width, output);
            be.AddSigmoidGated(be.Load(gates), be.Load(shared), rows, width, output);
            return be.ReadAll(output, rows * width);
        }

        using var cpu = new CpuBackend(1);
        var expected = Run(cpu);
        var actual = Run(_gpu);
        for (int i = 0; i < expected.Length; i++) actual[i].Should().BeApproximately(expected[i], 1e-6f, $"element {i}");
    }
}
