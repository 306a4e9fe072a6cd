using Engine.Formats;
using Engine.Models;
using Engine.Tests.Gpu.Quantized;

namespace Engine.Tests.Gpu;

/// <summary>A layer's worth of test experts: `experts` random matrices of one type and shape, as an
/// <see cref="ExpertMatrices"/>, with every weight as the CPU scalar reference dequantizes it. Float types hold
/// multiples of 1/64, exact in F32, F16 and BF16 alike.</summary>
sealed class TestExpertStack : IDisposable
{
    readonly List<IDisposable> _owned = [];

    public TestExpertStack(GgmlType type, int experts, int rows, int cols, int seed)
    {
        var matrices = new WeightMatrix[experts];
        Dequantized = new float[experts][];
        for (int e = 0; e < experts; e++)
        {
            if (type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16)
            {
                var random = new Random(seed + e);
                var values = Enumerable.Range(0, rows * cols).Select(_ => random.Next(-64, 65) / 64f).ToArray();
                matrices[e] = TestWeights.Matrix($"expert{e}", type, rows, cols, values);
                Dequantized[e] = values;
            }
            else
            {
                var quantized = new QuantizedMatrix(type, rows, cols, seed + e);
                _owned.Add(quantized);
                matrices[e] = quantized.Weights;
                Dequantized[e] = quantized.Dequantized;
            }
        }
        Stack = new ExpertMatrices($"blk.0.ffn_test_exps.{type}", matrices);
    }

    public ExpertMatrices Stack { get; }
    public float[][] Dequantized { get; }
    public int Rows => Stack.Rows;
    public int Cols => Stack.Cols;

    /// <summary>Expert e's row r · x[offset ..], in double, and the sum of |w * x| that scales a tolerance.</summary>
    public (double Dot, double Magnitude) Reference(int expert, int row, float[] x, int offset)
    {
        double sum = 0, magnitude = 0;
        for (int c = 0; c < Cols; c++)
        {
            double p = (double)Dequantized[expert][row * Cols + c] * x[offset + c];
            sum += p;
            magnitude += Math.Abs(p);
        }
        return (sum, magnitude);
    }

    /// <summary>Columns valid for every block type: whole 256-element super-blocks.</summary>
    public static int ColsFor(GgmlType type) => type.Info().BlockSize == 32 ? 96 : 256;

    public void Dispose()
    {
        foreach (var owned in _owned) owned.Dispose();
    }
}
