using Engine.Formats;
using Engine.Models;

namespace Engine.Tests.Gpu;

/// <summary>Small weight matrices in a given storage type, built in memory for kernel tests.</summary>
internal static class TestWeights
{
    /// <summary>A rows x cols matrix of `type` holding `values` (row-major) rounded to that type.
    /// The region stays alive as long as the returned matrix is referenced through the test.</summary>
    public static WeightMatrix Matrix(string name, GgmlType type, int rows, int cols, float[] values)
    {
        byte[] bytes = type switch
        {
            GgmlType.F32 => values.SelectMany(BitConverter.GetBytes).ToArray(),
            GgmlType.F16 => values.SelectMany(v => BitConverter.GetBytes(BitConverter.HalfToUInt16Bits((Half)v))).ToArray(),
            GgmlType.BF16 => values.SelectMany(v => BitConverter.GetBytes(ToBFloat16(v))).ToArray(),
            _ => throw new ArgumentOutOfRangeException(nameof(type), type, "float types only"),
        };
        var region = MappedRegion.FromBytes(bytes, name);
        var view = new TensorView(name, type, [cols, rows], (long)rows * cols, bytes.Length, 0, region);
        return new WeightMatrix(name, view);
    }

    /// <summary>Round to nearest even, as ggml's fp32 -> bf16.</summary>
    static ushort ToBFloat16(float v)
    {
        uint bits = BitConverter.SingleToUInt32Bits(v);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }

    public static float[] Random(int count, int seed, float scale = 1f)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 2 - 1) * scale;
        return values;
    }
}
