using Engine.Formats;
using global::Engine.Quantization;

namespace Engine.Tests.Quantization;

/// <summary>The budgets of llama.cpp's tests/test-quantize-fns.cpp, on the same synthetic data.</summary>
public class QuantizerTests
{
    const int TestSize = 32 * 128;
    const float MaxQuantizationTotalError = 0.002f;
    const float MaxQuantizationTotalError2Bits = 0.0075f;
    const float MaxQuantizationTotalError3Bits = 0.0040f;
    const float MaxDotProductError = 0.02f;

    public static TheoryData<GgmlType> Quantizable()
    {
        var d = new TheoryData<GgmlType>();
        foreach (var f in RowFormats.Supported)
            if (RowFormats.QuantizerFor(f.Type) is not null) d.Add(f.Type);
        return d;
    }

    [Fact]
    public void The_converter_types_have_quantizers()
    {
        foreach (var t in new[] { GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q5_0, GgmlType.Q4_K, GgmlType.Q6_K })
            RowFormats.QuantizerFor(t).Should().NotBeNull(t.ToString());
    }

    /// <summary>array_rmse as ggml writes it: sqrt(sum of squares) / n.</summary>
    static float GgmlRmse(float[] a, float[] b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++) { double d = a[i] - b[i]; sum += d * d; }
        return (float)Math.Sqrt(sum) / a.Length;
    }

    static float Budget(GgmlType t) => t switch
    {
        GgmlType.Q2_K => MaxQuantizationTotalError2Bits,
        GgmlType.Q3_K => MaxQuantizationTotalError3Bits,
        _ => MaxQuantizationTotalError,
    };

    [Theory, MemberData(nameof(Quantizable))]
    public void Quantize_then_dequantize_is_within_ggml_budget(GgmlType t)
    {
        var f = RowFormats.For(t);
        var q = RowFormats.QuantizerFor(t)!;
        var x = QuantTestData.GgmlTestData(0, TestSize);
        var bytes = new byte[TestSize / f.BlockSize * f.BytesPerBlock];
        q.QuantizeRowReference(x, bytes);
        var back = new float[TestSize];
        f.DequantizeRow(bytes, back);
        GgmlRmse(x, back).Should().BeLessThan(Budget(t));
    }

    [Theory, MemberData(nameof(Quantizable))]
    public void Quantized_dot_is_within_ggml_budget(GgmlType t)
    {
        var f = RowFormats.For(t);
        var q = RowFormats.QuantizerFor(t)!;
        var w = QuantTestData.GgmlTestData(0, TestSize);
        var x = QuantTestData.GgmlTestData(1, TestSize);
        var bytes = new byte[TestSize / f.BlockSize * f.BytesPerBlock];
        q.QuantizeRowReference(w, bytes);
        var act = new byte[f.ActivationBytes(TestSize)];
        f.QuantizeActivations(x, act);
        float exact = 0;
        for (int i = 0; i < TestSize; i++) exact += w[i] * x[i];
        (MathF.Abs(f.DotRowReference(bytes, act, TestSize) - exact) / TestSize).Should().BeLessThan(MaxDotProductError);
        (MathF.Abs(f.DotRow(bytes, act, TestSize) - exact) / TestSize).Should().BeLessThan(MaxDotProductError);
    }

    [Theory, MemberData(nameof(Quantizable))]
    public void All_zero_rows_quantize_to_zero(GgmlType t)
    {
        var f = RowFormats.For(t);
        int k = f.BlockSize * 2;
        var bytes = new byte[2 * f.BytesPerBlock];
        RowFormats.QuantizerFor(t)!.QuantizeRowReference(new float[k], bytes);
        var back = new float[k];
        f.DequantizeRow(bytes, back);
        back.Should().OnlyContain(v => v == 0);
    }

    [Fact]
    public void Q8_0_weight_quantizer_rounds_halves_away_from_zero_like_roundf()
    {
        // amax 127 gives d = 1 exactly, so x * id is x itself.
        var x = new float[32];
        x[0] = 127; x[1] = 2.5f; x[2] = -2.5f; x[3] = 0.5f; x[4] = -0.49f;
        var q = new byte[34];
        RowFormats.QuantizerFor(GgmlType.Q8_0)!.QuantizeRowReference(x, q);
        ((float)BitConverter.ToHalf(q, 0)).Should().Be(1f);
        ((sbyte)q[2]).Should().Be(127);
        ((sbyte)q[3]).Should().Be(3);
        ((sbyte)q[4]).Should().Be(-3);
        ((sbyte)q[5]).Should().Be(1);
        ((sbyte)q[6]).Should().Be(0);
    }

    /// <summary>Activations are quantized as llama.cpp's x86 backend does it (127/amax, halves to even), on every
    /// path: the CI reruns this with AVX2 and all hardware intrinsics disabled.</summary>
    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_1)]
    public void Activation_quantizer_rounds_halves_to_even(GgmlType weightType)
    {
        var x = new float[64];
        x[0] = 127; x[1] = 2.5f; x[2] = -2.5f; x[3] = 0.5f; x[4] = -0.49f; x[5] = 3.5f; x[6] = -1.5f;
        x[32] = -63.5f; x[33] = 31.75f;
        var format = RowFormats.For(weightType);
        var act = new byte[format.ActivationBytes(64)];
        format.QuantizeActivations(x, act);
        var back = new float[64];
        Activations.Dequantize(format.ActivationType, act, back);
        back.AsSpan(0, 7).ToArray().Should().Equal(127f, 2f, -2f, 0f, 0f, 4f, -2f);
        // Second block: amax 63.5, so x * 127/amax = 2x; 31.75 -> 63.5 -> 64 (even), -63.5 -> -127.
        float d = (float)(Half)(63.5f / 127);
        back[32].Should().Be(-127 * d);
        back[33].Should().Be(64 * d);
    }

    [Fact]
    public void Q4_0_quantizer_maps_the_signed_extreme_to_minus_8()
    {
        var x = new float[32];
        x[0] = -4; x[1] = 2; x[2] = 1; x[3] = 3.9f;
        var bytes = new byte[18];
        RowFormats.QuantizerFor(GgmlType.Q4_0)!.QuantizeRowReference(x, bytes);
        ((float)BitConverter.ToHalf(bytes, 0)).Should().Be(0.5f); // d = max / -8 = -4 / -8
        (bytes[2] & 0xF).Should().Be(0);                          // -4 / 0.5 + 8 = 0
        (bytes[3] & 0xF).Should().Be(12);                         // 2 / 0.5 + 8
        (bytes[5] & 0xF).Should().Be(15);                         // 3.9 / 0.5 + 8.5 = 16.3, clamped to 15
    }

    [Fact]
    public void Q8_K_uses_minus_127_over_max_and_rounds_ties_to_even()
    {
        // max = -127 gives iscale = 1, so x itself is rounded by nearest_int (ties to even).
        var x = new float[256];
        x[0] = -127; x[1] = 2.5f; x[2] = 3.5f; x[3] = -2.5f; x[17] = 100;
        var act = new byte[292];
        RowFormats.For(GgmlType.Q4_K).QuantizeActivations(x, act);
        BitConverter.ToSingle(act, 0).Should().Be(1f);
        ((sbyte)act[4]).Should().Be(-127);
        ((sbyte)act[5]).Should().Be(2);
        ((sbyte)act[6]).Should().Be(4);
        ((sbyte)act[7]).Should().Be(-2);
        BitConverter.ToInt16(act, 4 + 256).Should().Be(-127 + 2 + 4 - 2);  // bsums[0]
        BitConverter.ToInt16(act, 4 + 256 + 2).Should().Be(100);           // bsums[1]
    }

    [Fact]
    public void F16_conversions_are_exact_for_every_bit_pattern()
    {
        var f = RowFormats.For(GgmlType.F16);
        var bits = new byte[65536 * 2];
        for (int i = 0; i < 65536; i++) BitConverter.TryWriteBytes(bits.AsSpan(2 * i), (ushort)i);
        var a = new float[65536];
        var b = new float[65536];
        f.DequantizeRowReference(bits, a);
        f.DequantizeRow(bits, b);
        for (int i = 0; i < 65536; i++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf((ushort)i);
            if (float.IsNaN(expected)) { float.IsNaN(a[i]).Should().BeTrue(); continue; }
            BitConverter.SingleToInt32Bits(a[i]).Should().Be(BitConverter.SingleToInt32Bits(expected), $"half 0x{i:x4}");
            BitConverter.SingleToInt32Bits(b[i]).Should().Be(BitConverter.SingleToInt32Bits(expected), $"half 0x{i:x4}");
        }
    }
}
