using Engine.Backends;
using Engine.Backends.Cpu;
using Engine.Formats;
using Engine.Gpu;
using Engine.Models;
using Engine.Tests.Gpu.Quantized;
using Engine.Tests.Support;

namespace Engine.Tests.Gpu;

/// <summary>The GPU backend's GPTQ / AWQ linears (Q4_0 rows with an act-order input order and zero-point terms, see
/// <see cref="QuantizedLinear"/>) against two references, on random Q4_0 rows, orders and terms:
///   float activations: the double sum Σ_j W[r, j]·x[order[j]] + Σ_b terms[r, b]·Σ_block x[order[..]], within
///   1e-5·Σ|terms of the sum| (float accumulation, as the dense kernel tests);
///   both modes: the CPU backend's MatMul of the same matrix (its QuantizedLinearMatMul), within 1e-5·Σ|..| + 1e-6:
///   in 8-bit mode the device rounds the input to the Q8_0 values the CPU quantizes it to, so only the summation
///   order differs.
/// Dense decode (1 token) and prompt (5 tokens), and a layer's experts, decode and prompt, each expert with its own
/// order and terms.</summary>
[Collection(GpuCollection.Name)]
public sealed class GpuQuantizedLinearTests(GpuTestDevice device) : IDisposable
{
    const int Block = 32;
    readonly GpuBackend _gpu = new(device.Device, ownsDevice: false);
    readonly CpuBackend _cpu = new(1);
    readonly List<IDisposable> _owned = [];

    public void Dispose()
    {
        _gpu.Dispose();
        _cpu.Dispose();
        foreach (var o in _owned) o.Dispose();
    }

    sealed record Linear(WeightMatrix Matrix, float[] Dequantized, int[]? Order, float[]? Terms);

    Linear Make(int rows, int cols, int seed, bool order, bool zeros, bool floatActivations)
    {
        var q = new QuantizedMatrix(GgmlType.Q4_0, rows, cols, seed);
        _owned.Add(q);
        var rng = new Random(seed + 1);
        int[]? inputOrder = order ? Enumerable.Range(0, cols).OrderBy(_ => rng.Next()).ToArray() : null;
        // s·(8 − z): a scale of the order of the rows' times a small integer, exactly as the repack makes them.
        float[]? terms = zeros ? Enumerable.Range(0, rows * cols / Block).Select(_ => (float)(Half)(rng.NextDouble() * 0.02) * rng.Next(-7, 9)).ToArray() : null;
        var matrix = new WeightMatrix(q.Weights.Name, q.Weights.View)
        {
            Quantized = new QuantizedLinear { InputOrder = inputOrder, ZeroCorrection = terms, FloatActivations = floatActivations, Description = "test GPTQ" },
        };
        return new Linear(matrix, q.Dequantized, inputOrder, terms);
    }

    /// <summary>Row r of the linear times input row x[offset ..], in double, and the sum of the terms' magnitudes.</summary>
    static (double Value, double Magnitude) Reference(Linear l, int r, float[] x, int offset)
    {
        int cols = l.Matrix.Cols, blocks = cols / Block;
        double sum = 0, magnitude = 0;
        for (int j = 0; j < cols; j++)
        {
            double p = (double)l.Dequantized[r * cols + j] * x[offset + (l.Order?[j] ?? j)];
            sum += p;
            magnitude += Math.Abs(p);
        }
        if (l.Terms is { } terms)
            for (int b = 0; b < blocks; b++)
            {
                double blockSum = 0;
                for (int j = b * Block; j < b * Block + Block; j++) blockSum += x[offset + (l.Order?[j] ?? j)];
                sum += terms[r * blocks + b] * blockSum;
                magnitude += Math.Abs(terms[r * blocks + b] * blockSum);
            }
        return (sum, magnitude);
    }

    static float[] MatMul(IBackend backend, WeightMatrix w, float[] x, int tokens)
    {
        var y = backend.Allocate("y", tokens * w.Rows);
        backend.MatMul(w, backend.Load(x), tokens, y);
        return backend.ReadAll(y, tokens * w.Rows);
    }

    public static TheoryData<bool, bool, bool, int> Cases()
    {
        var data = new TheoryData<bool, bool, bool, int>();
        foreach (bool floatActivations in new[] { true, false })
            foreach (var (order, zeros) in new[] { (true, true), (false, true), (true, false), (false, false) })
                foreach (int tokens in new[] { 1, 5 })
                    data.Add(floatActivations, order, zeros, tokens);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Dense_linears_match_the_reference_and_the_cpu(bool floatActivations, bool order, bool zeros, int tokens)
    {
        var l = Make(rows: 37, cols: 160, seed: 100 + tokens, order, zeros, floatActivations);
        int cols = l.Matrix.Cols, rows = l.Matrix.Rows;
        var x = TestWeights.Random(tokens * cols, seed: 7 + tokens, scale: 2f);
        var gpu = MatMul(_gpu, l.Matrix, x, tokens);
        var cpu = MatMul(_cpu, l.Matrix, x, tokens);
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++)
            {
                var (exact, magnitude) = Reference(l, r, x, t * cols);
                int i = t * rows + r;
                Math.Abs((double)gpu[i] - cpu[i]).Should().BeLessThanOrEqualTo(1e-5 * magnitude + 1e-6, $"token {t} row {r}: device against the CPU backend");
                if (floatActivations) Math.Abs(gpu[i] - exact).Should().BeLessThanOrEqualTo(1e-5 * magnitude + 1e-6, $"token {t} row {r}: device against the double sum");
            }
        if (!floatActivations)
        {
            // The 8-bit mode really rounds: it is further from the exact sums than float rounding.
            double worst = Enumerable.Range(0, tokens * rows).Max(i => Math.Abs(gpu[i] - Reference(l, i % rows, x, i / rows * cols).Value));
            worst.Should().BeGreaterThan(1e-4);
        }
    }

    [Theory]
    [InlineData(true, 1)]
    [InlineData(true, 11)]
    [InlineData(false, 1)]
    [InlineData(false, 11)]
    public void Expert_linears_take_each_experts_order_and_zero_points(bool floatActivations, int rows)
    {
        const int experts = 6, k = 2, cols = 96, outputs = 21;
        // Expert 3 has neither an order nor zero points: it reads its input in place and adds nothing.
        var linears = Enumerable.Range(0, experts).Select(e => Make(outputs, cols, 200 + e, order: e != 3, zeros: e != 3, floatActivations)).ToArray();
        var stack = new ExpertMatrices("blk.0.ffn_gate_exps.gptq", linears.Select(l => l.Matrix).ToArray());
        var shape = new ExpertRoutingShape(experts, k, ExpertGating.Softmax, NormalizeWeights: true, MaxRows: rows, MaxWidth: cols);
        var routing = _gpu.CreateExpertRouting(shape);
        var chosen = _gpu.Route(routing, TestWeights.Random(rows * experts, seed: 61 + rows, scale: 3f), rows).Chosen;
        foreach (bool inputPerSlot in new[] { false, true })
        {
            var x = TestWeights.Random((inputPerSlot ? rows * k : rows) * cols, seed: 62);
            var y = _gpu.Allocate("y", rows * k * outputs);
            _gpu.ExpertMatMul(stack, routing, _gpu.Load(x), rows, inputPerSlot, y);
            var actual = _gpu.ReadAll(y, rows * k * outputs);
            for (int slot = 0; slot < rows * k; slot++)
            {
                var l = linears[chosen[slot]];
                int offset = (inputPerSlot ? slot : slot / k) * cols;
                var cpu = MatMul(_cpu, l.Matrix, x[offset..(offset + cols)], 1);
                for (int r = 0; r < outputs; r++)
                {
                    var (exact, magnitude) = Reference(l, r, x, offset);
                    string because = $"slot {slot} (expert {chosen[slot]}) row {r}, input per slot {inputPerSlot}";
                    Math.Abs((double)actual[slot * outputs + r] - cpu[r]).Should().BeLessThanOrEqualTo(1e-5 * magnitude + 1e-6, because + ": against the CPU backend");
                    if (floatActivations) Math.Abs(actual[slot * outputs + r] - exact).Should().BeLessThanOrEqualTo(1e-5 * magnitude + 1e-6, because + ": against the double sum");
                }
            }
        }
    }

    [Fact]
    public void Orders_and_terms_are_counted_in_device_memory_and_freed_with_the_backend()
    {
        using var gpu = new GpuBackend(device.Device, ownsDevice: false);
        var plain = Make(rows: 40, cols: 128, seed: 300, order: false, zeros: false, floatActivations: true);
        var full = Make(rows: 40, cols: 128, seed: 301, order: true, zeros: true, floatActivations: true);
        long before = gpu.DeviceBytesInUse;
        MatMul(gpu, plain.Matrix, new float[128], 1);
        long plainBytes = gpu.DeviceBytesInUse - before;
        before = gpu.DeviceBytesInUse;
        MatMul(gpu, full.Matrix, new float[128], 1);
        long fullBytes = gpu.DeviceBytesInUse - before;
        // The order (128 ints) and terms (40 x 4 floats), and the block sums' scratch, beside the same Q4_0 rows.
        fullBytes.Should().BeGreaterThanOrEqualTo(plainBytes + 128 * 4 + 40 * 4 * 4);
        gpu.Dispose();
        gpu.DeviceBytesInUse.Should().Be(0);
    }

    [Fact]
    public void A_table_that_does_not_fit_its_matrix_is_refused_before_upload()
    {
        var l = Make(rows: 8, cols: 64, seed: 400, order: false, zeros: false, floatActivations: true);
        var bad = new WeightMatrix("bad.gptq", l.Matrix.View)
        {
            Quantized = new QuantizedLinear { InputOrder = [0, 1, 2], Description = "test GPTQ" },
        };
        FluentActions.Invoking(() => _gpu.Upload(new WeightSet([bad], []))).Should().Throw<ArgumentException>().WithMessage("*bad.gptq*3 entries for 64 inputs*");
        _gpu.DeviceBytesInUse.Should().Be(0);
    }
}
