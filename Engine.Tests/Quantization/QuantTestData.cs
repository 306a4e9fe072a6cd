using System.Runtime.InteropServices;
using Engine.Formats;
using global::Engine.Quantization;

namespace Engine.Tests.Quantization;

/// <summary>Deterministic test inputs: random rows of a format with finite, small f16 scale fields, and
/// llama.cpp's test-quantize-fns data (0.1 + 2 cos(i + offset)).</summary>
static class QuantTestData
{
    /// <summary>Byte offsets of the f16 fields inside one block of each type (they must stay finite).</summary>
    static int[] HalfOffsets(GgmlType t) => t switch
    {
        GgmlType.Q4_0 or GgmlType.Q5_0 or GgmlType.Q8_0 or GgmlType.IQ4_NL or GgmlType.IQ4_XS => [0],
        GgmlType.Q4_1 or GgmlType.Q5_1 or GgmlType.Q4_K or GgmlType.Q5_K => [0, 2],
        GgmlType.Q2_K => [80, 82],
        GgmlType.Q3_K => [108],
        GgmlType.Q6_K => [208],
        _ => [],
    };

    public static byte[] RandomRow(GgmlType t, int k, Random rng)
    {
        var info = t.Info();
        var row = new byte[k / info.BlockSize * info.BytesPerBlock];
        switch (t)
        {
            case GgmlType.F32:
                var f = MemoryMarshal.Cast<byte, float>(row.AsSpan());
                for (int i = 0; i < f.Length; i++) f[i] = (float)(rng.NextDouble() * 2 - 1);
                return row;
            case GgmlType.F16:
                var h = MemoryMarshal.Cast<byte, Half>(row.AsSpan());
                for (int i = 0; i < h.Length; i++) h[i] = (Half)(rng.NextDouble() * 2 - 1);
                return row;
            case GgmlType.BF16:
                var b = MemoryMarshal.Cast<byte, ushort>(row.AsSpan());
                for (int i = 0; i < b.Length; i++) b[i] = (ushort)(BitConverter.SingleToUInt32Bits((float)(rng.NextDouble() * 2 - 1)) >> 16);
                return row;
        }
        rng.NextBytes(row);
        var offsets = HalfOffsets(t);
        for (int blk = 0; blk < row.Length / info.BytesPerBlock; blk++)
            foreach (var o in offsets)
            {
                // Scales in [0.0005, 0.05], occasionally negative and occasionally zero, as real files have.
                double v = 0.0005 + rng.NextDouble() * 0.05;
                if (rng.Next(8) == 0) v = -v;
                if (rng.Next(50) == 0) v = 0;
                BitConverter.TryWriteBytes(row.AsSpan(blk * info.BytesPerBlock + o), (Half)v);
            }
        return row;
    }

    /// <summary>Activations: mostly in [-1, 1] with a few outliers, like a hidden state.</summary>
    public static float[] RandomActivations(int k, Random rng)
    {
        var x = new float[k];
        for (int i = 0; i < k; i++)
        {
            x[i] = (float)(rng.NextDouble() * 2 - 1);
            if (rng.Next(64) == 0) x[i] *= 20;
        }
        return x;
    }

    /// <summary>generate_data from llama.cpp's tests/test-quantize-fns.cpp.</summary>
    public static float[] GgmlTestData(float offset, int n)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = 0.1f + 2 * MathF.Cos(i + offset);
        return x;
    }

    /// <summary>The ks every kernel is checked at: 0..8 blocks and an odd count of 37 blocks.</summary>
    public static IEnumerable<int> Lengths(int blockSize, int activationBlock)
    {
        int unit = Math.Max(blockSize, activationBlock);
        for (int n = 0; n <= 8; n++) yield return unit * n;
        yield return unit * 37;
    }

    /// <summary>The float dot of what a kernel actually multiplies (the dequantized row and the dequantized
    /// activations) in double, and the sum of the |products|, which scales the rounding bound of a float sum.</summary>
    public static (double Exact, double Magnitude) DequantizedDot(IRowFormat f, byte[] row, byte[] act, int k)
    {
        var w = new float[k];
        var xa = new float[k];
        f.DequantizeRowReference(row, w);
        Activations.Dequantize(f.ActivationType, act, xa);
        double exact = 0, magnitude = 0;
        for (int i = 0; i < k; i++) { exact += (double)w[i] * xa[i]; magnitude += Math.Abs((double)w[i] * xa[i]); }
        return (exact, magnitude);
    }
}
