using Engine.Backends.Cpu;
using Engine.Formats;
using Engine.Gpu;
using Engine.Gpu.Kernels;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Tests.Gpu;

/// <summary>The float weight kernels (F32, F16, BF16) against the CPU backend on odd sizes, for one token (the
/// matrix-vector kernel) and several (the tiled matrix-matrix kernel).
///
/// Tolerance: |gpu - cpu| &lt;= 1e-5 * Σ|w·x| for F32 (the two only sum in different orders). For F16 and BF16
/// the CPU backend, like ggml, first rounds the activations to the weight's 16-bit type while the GPU keeps
/// them float32, so the bound is that rounding: 2^-11 (F16) and 2^-8 (BF16) of Σ|w·x|.</summary>
[Collection(GpuCollection.Name)]
public class FloatWeightKernelTests(GpuTestDevice device)
{
    readonly Accelerator _accelerator = device.Device.Accelerator;

    [Theory]
    [InlineData(GgmlType.F32, 1)] [InlineData(GgmlType.F32, 6)]
    [InlineData(GgmlType.F16, 1)] [InlineData(GgmlType.F16, 7)]
    [InlineData(GgmlType.BF16, 1)] [InlineData(GgmlType.BF16, 5)]
    public void MatMul_matches_the_cpu_backend(GgmlType type, int tokens)
    {
        const int rows = 13, cols = 37;
        var w = TestWeights.Matrix("w", type, rows, cols, TestWeights.Random(rows * cols, seed: 1));
        var x = TestWeights.Random(tokens * cols, seed: 2);

        var expected = CpuMatMul(w, x, tokens);
        var kernels = new WeightKernelRegistry(_accelerator).For(w);
        using var matrix = kernels.Upload(w);
        using var xs = _accelerator.Allocate1D(x);
        using var ys = _accelerator.Allocate1D<float>(tokens * rows);
        kernels.MatMul(matrix, xs.View, tokens, ys.View);
        var actual = ys.GetAsArray1D();

        double relative = type switch { GgmlType.F32 => 1e-5, GgmlType.F16 => 1.0 / 2048, _ => 1.0 / 256 };
        var values = DecodedWeights(w);
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++)
            {
                double magnitude = 0;
                for (int c = 0; c < cols; c++) magnitude += Math.Abs(values[r * cols + c] * x[t * cols + c]);
                actual[t * rows + r].Should().BeApproximately(expected[t * rows + r], (float)(relative * magnitude + 1e-6), $"token {t}, row {r}");
            }
    }

    [Theory]
    [InlineData(GgmlType.F32)] [InlineData(GgmlType.F16)] [InlineData(GgmlType.BF16)]
    public void DequantizeRows_gives_the_rows_exactly(GgmlType type)
    {
        const int rows = 9, cols = 11;
        var w = TestWeights.Matrix("table", type, rows, cols, TestWeights.Random(rows * cols, seed: 3, scale: 4));
        int[] ids = [8, 0, 3, 3];
        var kernels = new WeightKernelRegistry(_accelerator).For(w);
        using var matrix = kernels.Upload(w);
        using var idBuffer = _accelerator.Allocate1D(ids);
        using var dst = _accelerator.Allocate1D<float>(ids.Length * cols);
        kernels.DequantizeRows(matrix, idBuffer.View, ids.Length, dst.View);

        var values = DecodedWeights(w);
        var expected = ids.SelectMany(id => values.Skip(id * cols).Take(cols)).ToArray();
        dst.GetAsArray1D().Should().Equal(expected);
    }

    [Fact]
    public void F16_subnormals_infinities_and_signed_zero_decode_exactly()
    {
        float[] special = [0f, -0f, 5.9604645e-8f, -6.1035156e-5f, 65504f, float.PositiveInfinity, float.NegativeInfinity, 1.5e-6f];
        var w = TestWeights.Matrix("special", GgmlType.F16, 1, special.Length, special);
        var kernels = new WeightKernelRegistry(_accelerator).For(w);
        using var matrix = kernels.Upload(w);
        using var idBuffer = _accelerator.Allocate1D(new[] { 0 });
        using var dst = _accelerator.Allocate1D<float>(special.Length);
        kernels.DequantizeRows(matrix, idBuffer.View, 1, dst.View);
        var bits = dst.GetAsArray1D().Select(BitConverter.SingleToUInt32Bits);
        bits.Should().Equal(DecodedWeights(w).Select(BitConverter.SingleToUInt32Bits));
    }

    [Fact]
    public void A_type_without_device_kernels_names_the_tensor_and_suggests_the_cpu()
    {
        var bytes = new byte[34];
        var view = new TensorView("blk.0.attn_q.weight", GgmlType.Q8_0, [32, 1], 32, bytes.Length, 0, MappedRegion.FromBytes(bytes));
        var registry = new WeightKernelRegistry(_accelerator);
        if (registry.Supports(GgmlType.Q8_0)) return; // the quantized kernels are registered: nothing to refuse
        var act = () => registry.For(new Engine.Models.WeightMatrix("blk.0.attn_q.weight", view));
        act.Should().Throw<UnsupportedDeviceWeightException>().WithMessage("*blk.0.attn_q.weight*Q8_0*--device cpu*");
    }

    static float[] CpuMatMul(Engine.Models.WeightMatrix w, float[] x, int tokens)
    {
        using var cpu = new CpuBackend(1);
        var xb = cpu.Allocate("x", x.Length);
        var yb = cpu.Allocate("y", tokens * w.Rows);
        cpu.Write(xb, 0, x);
        cpu.MatMul(w, xb, tokens, yb);
        var y = new float[tokens * w.Rows];
        cpu.Read(yb, 0, y);
        return y;
    }

    /// <summary>The weights as the CPU backend decodes them (the exact values both backends multiply).</summary>
    static float[] DecodedWeights(Engine.Models.WeightMatrix w)
    {
        using var cpu = new CpuBackend(1);
        var dst = cpu.Allocate("rows", w.Rows * w.Cols);
        var batch = new Engine.Models.ForwardBatch(Engine.Models.Llama.DefaultBlockTokens);
        batch.Add(Enumerable.Range(0, w.Rows).ToArray(), 0, Enumerable.Range(0, (w.Rows + Engine.Models.Llama.DefaultBlockTokens - 1) / Engine.Models.Llama.DefaultBlockTokens).ToArray(),
            Engine.Models.LogitsWanted.None);
        cpu.Embed(w, batch, dst);
        var values = new float[w.Rows * w.Cols];
        cpu.Read(dst, 0, values);
        return values;
    }
}
