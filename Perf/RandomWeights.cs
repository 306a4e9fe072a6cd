using Engine.Formats;
using Engine.Quantization;

namespace Engine.Perf;

/// <summary>Deterministic random inputs for the kernel suites.</summary>
public static class RandomWeights
{
    public static float[] Floats(int count, int seed, float std = 0.1f)
    {
        var random = new Random(seed);
        var v = new float[count];
        for (int i = 0; i < count; i++)
        {
            // Box-Muller: normal values like trained weights, not uniform ones.
            double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
            v[i] = (float)(std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return v;
    }

    /// <summary>rows x cols weights in the given type, row after row.</summary>
    public static byte[] Quantized(GgmlType type, int rows, int cols, out long rowBytes)
    {
        var format = RowFormats.For(type);
        rowBytes = (long)cols / format.BlockSize * format.BytesPerBlock;
        var bytes = new byte[rowBytes * rows];
        var quantizer = RowFormats.QuantizerFor(type);
        for (int r = 0; r < rows; r++)
        {
            var row = Floats(cols, seed: r + 1);
            var dst = bytes.AsSpan((int)(r * rowBytes), (int)rowBytes);
            if (quantizer is not null) quantizer.QuantizeRowReference(row, dst);
            else if (type == GgmlType.F16) for (int i = 0; i < cols; i++) BitConverter.TryWriteBytes(dst[(2 * i)..], (Half)row[i]);
            else if (type == GgmlType.BF16) for (int i = 0; i < cols; i++) BitConverter.TryWriteBytes(dst[(2 * i)..], (ushort)(BitConverter.SingleToInt32Bits(row[i]) >> 16));
            else Random.Shared.NextBytes(dst); // types without a quantizer (IQ4_*): any bytes are valid blocks
        }
        return bytes;
    }
}
