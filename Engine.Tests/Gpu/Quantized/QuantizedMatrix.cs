using Engine.Formats;
using Engine.Models;
using Engine.Quantization;
using Engine.Tests.Quantization;

namespace Engine.Tests.Gpu.Quantized;

/// <summary>Random but valid quantized matrices (finite f16 scales, as Engine.Tests.Quantization builds them),
/// wrapped as the WeightMatrix the loader would hand over, and their CPU reference results.</summary>
sealed class QuantizedMatrix : IDisposable
{
    readonly MappedRegion _region;

    public QuantizedMatrix(GgmlType type, int rows, int cols, int seed)
    {
        var rng = new Random(seed);
        var info = type.Info();
        RowBytes = cols / info.BlockSize * info.BytesPerBlock;
        Bytes = new byte[rows * RowBytes];
        for (int r = 0; r < rows; r++) QuantTestData.RandomRow(type, cols, rng).CopyTo(Bytes, r * RowBytes);
        _region = MappedRegion.FromBytes(Bytes, "<test>");
        Weights = new WeightMatrix($"{type}.test", new TensorView($"{type}.test", type, [cols, rows], (long)rows * cols, Bytes.Length, 0, _region));
        Dequantized = new float[rows * cols];
        var format = RowFormats.For(type);
        for (int r = 0; r < rows; r++)
            format.DequantizeRowReference(Bytes.AsSpan(r * RowBytes, RowBytes), Dequantized.AsSpan(r * cols, cols));
    }

    public byte[] Bytes { get; }
    public int RowBytes { get; }
    public WeightMatrix Weights { get; }
    public int Rows => Weights.Rows;
    public int Cols => Weights.Cols;
    /// <summary>Every weight as the CPU scalar reference dequantizes it.</summary>
    public float[] Dequantized { get; }

    /// <summary>y[t * Rows + r] in double, and the matching sum of |w * x| that scales the tolerance.</summary>
    public (double[] Y, double[] Magnitude) Reference(float[] x, int tokens)
    {
        var y = new double[tokens * Rows];
        var magnitude = new double[tokens * Rows];
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < Rows; r++)
            {
                double sum = 0, abs = 0;
                for (int c = 0; c < Cols; c++)
                {
                    double p = (double)Dequantized[r * Cols + c] * x[t * Cols + c];
                    sum += p;
                    abs += Math.Abs(p);
                }
                y[t * Rows + r] = sum;
                magnitude[t * Rows + r] = abs;
            }
        return (y, magnitude);
    }

    public void Dispose() => _region.Dispose();
}
