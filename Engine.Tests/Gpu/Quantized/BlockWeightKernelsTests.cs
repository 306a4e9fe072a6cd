using Engine.Formats;
using Engine.Gpu.Kernels;
using Engine.Gpu.Kernels.Quantized;
using Engine.Tests.Quantization;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Tests.Gpu.Quantized;

/// <summary>
/// Every quantized type's device kernels against the CPU scalar reference. Shapes: 67 rows (more than one
/// 64-row tile, not a multiple of the decode kernel's rows per group) and 9 blocks of 32 (two full 128-column
/// steps and a partial one) or 3 super-blocks of 256 (six steps); tokens 1 (decode kernel), 2, 5 and 17 (prompt
/// kernel, one and two token tiles).
/// Tolerance of a product: |gpu - exact| &lt;= 1e-4 * sum |w * x| + 1e-6, where exact is the double dot of the
/// reference weights: float accumulation in another order over at most 512 terms stays far inside it, while a
/// single wrong weight (a misplaced nibble, scale or column) does not.
/// </summary>
[Collection(QuantizedDeviceCollection.Name)]
public class BlockWeightKernelsTests(QuantizedTestDevice device)
{
    const int Rows = 67;
    const double RelativeTolerance = 1e-4, AbsoluteTolerance = 1e-6;

    public static TheoryData<GgmlType, int> TypesAndTokens()
    {
        var data = new TheoryData<GgmlType, int>();
        foreach (var type in Types)
            foreach (int tokens in new[] { 1, 2, 5, 17 })
                data.Add(type, tokens);
        return data;
    }

    public static TheoryData<GgmlType> AllTypes() => new(Types);

    static readonly GgmlType[] Types =
    [
        GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q5_0, GgmlType.Q4_K, GgmlType.Q6_K,
        GgmlType.Q4_1, GgmlType.Q5_1, GgmlType.Q5_K, GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.IQ4_NL, GgmlType.IQ4_XS,
    ];

    static int ColsFor(GgmlType type) => type.Info().BlockSize == 32 ? 288 : 768;

    [DeviceTheory]
    [MemberData(nameof(TypesAndTokens))]
    public void MatMulMatchesCpuReference(GgmlType type, int tokens)
    {
        var kernels = device.Kernels[type];
        using var matrix = new QuantizedMatrix(type, Rows, ColsFor(type), seed: (int)type * 100 + tokens);
        var rng = new Random(tokens);
        var x = QuantTestData.RandomActivations(tokens * matrix.Cols, rng);
        using var w = kernels.Upload(matrix.Weights);
        using var xs = device.Accelerator.Allocate1D(x);
        using var ys = device.Accelerator.Allocate1D<float>(tokens * Rows);
        ys.MemSetToZero();

        kernels.MatMul(w, xs.View, tokens, ys.View);
        device.Accelerator.Synchronize();

        var y = ys.GetAsArray1D();
        var (expected, magnitude) = matrix.Reference(x, tokens);
        for (int i = 0; i < y.Length; i++)
        {
            double allowed = RelativeTolerance * magnitude[i] + AbsoluteTolerance;
            Math.Abs(y[i] - expected[i]).Should().BeLessThanOrEqualTo(allowed,
                $"{type} token {i / Rows} row {i % Rows}: gpu {y[i]} vs reference {expected[i]}");
        }
    }

    [DeviceTheory]
    [MemberData(nameof(AllTypes))]
    public void DequantizeRowsIsBitExact(GgmlType type)
    {
        var kernels = device.Kernels[type];
        using var matrix = new QuantizedMatrix(type, Rows, ColsFor(type), seed: (int)type);
        int[] ids = [0, Rows - 1, 5, 5, 33];
        using var w = kernels.Upload(matrix.Weights);
        using var rowIds = device.Accelerator.Allocate1D(ids);
        using var dst = device.Accelerator.Allocate1D<float>(ids.Length * matrix.Cols);

        kernels.DequantizeRows(w, rowIds.View, ids.Length, dst.View);
        device.Accelerator.Synchronize();

        var got = dst.GetAsArray1D();
        for (int i = 0; i < ids.Length; i++)
        {
            var row = matrix.Dequantized.AsSpan(ids[i] * matrix.Cols, matrix.Cols);
            double allowed = FusedRoundingAllowance(row);
            for (int c = 0; c < matrix.Cols; c++)
            {
                float want = row[c], have = got[i * matrix.Cols + c];
                bool same = allowed == 0
                    ? BitConverter.SingleToInt32Bits(have) == BitConverter.SingleToInt32Bits(want)
                    : Math.Abs(have - want) <= allowed;
                if (!same) Assert.Fail($"{type} row {ids[i]} column {c}: gpu {have} vs reference {want}");
            }
        }
    }

    /// <summary>0 (bit-exact) on the CPU accelerator, which runs the decoders as .NET code. ILGPU's PTX backend
    /// emits mul.f32 / sub.f32 without a rounding mode, which lets ptxas fuse the affine types' d * q - m into one
    /// FMA (one rounding fewer); that moves a weight by at most an ulp of |d * q| &lt;= 2 max |w| of its row.</summary>
    static double FusedRoundingAllowance(ReadOnlySpan<float> row)
    {
        if (!QuantizedTestDevice.WantsCuda) return 0;
        float max = 0;
        foreach (float w in row) max = Math.Max(max, Math.Abs(w));
        return 2 * max * Math.Pow(2, -23);
    }

    [DeviceFact]
    public void DequantizeRowsWritesZerosForAnIdOutsideTheMatrix()
    {
        var kernels = device.Kernels[GgmlType.Q8_0];
        using var matrix = new QuantizedMatrix(GgmlType.Q8_0, Rows, 64, seed: 9);
        int[] ids = [-1, Rows, 2];
        using var w = kernels.Upload(matrix.Weights);
        using var rowIds = device.Accelerator.Allocate1D(ids);
        using var dst = device.Accelerator.Allocate1D<float>(ids.Length * 64);
        dst.MemSet(0xFF);

        kernels.DequantizeRows(w, rowIds.View, ids.Length, dst.View);
        device.Accelerator.Synchronize();

        var got = dst.GetAsArray1D();
        got[..128].Should().OnlyContain(v => v == 0f);
        got[128..].Should().Equal(matrix.Dequantized[128..192]);
    }

    [DeviceTheory]
    [InlineData(GgmlType.Q4_0, 1)]
    [InlineData(GgmlType.Q4_0, 3)]
    [InlineData(GgmlType.Q6_K, 1)]
    [InlineData(GgmlType.Q6_K, 3)]
    public void OneRowOfOneBlockWorks(GgmlType type, int tokens)
    {
        var kernels = device.Kernels[type];
        using var matrix = new QuantizedMatrix(type, 1, type.Info().BlockSize, seed: 5);
        var x = QuantTestData.RandomActivations(tokens * matrix.Cols, new Random(6));
        using var w = kernels.Upload(matrix.Weights);
        using var xs = device.Accelerator.Allocate1D(x);
        using var ys = device.Accelerator.Allocate1D<float>(tokens);

        kernels.MatMul(w, xs.View, tokens, ys.View);
        device.Accelerator.Synchronize();

        var y = ys.GetAsArray1D();
        var (expected, magnitude) = matrix.Reference(x, tokens);
        for (int t = 0; t < tokens; t++)
            Math.Abs(y[t] - expected[t]).Should().BeLessThanOrEqualTo(RelativeTolerance * magnitude[t] + AbsoluteTolerance);
    }

    [DeviceFact]
    public void MatMulRejectsActivationsShorterThanTokensTimesCols()
    {
        var kernels = device.Kernels[GgmlType.Q8_0];
        using var matrix = new QuantizedMatrix(GgmlType.Q8_0, 4, 64, seed: 7);
        using var w = kernels.Upload(matrix.Weights);
        using var xs = device.Accelerator.Allocate1D<float>(64);
        using var ys = device.Accelerator.Allocate1D<float>(8);
        var call = () => kernels.MatMul(w, xs.View, 2, ys.View);
        call.Should().Throw<ArgumentException>().WithMessage("*2 x 64*");
    }

    [DeviceFact]
    public void UploadRejectsAnotherType()
    {
        using var matrix = new QuantizedMatrix(GgmlType.Q4_0, 4, 64, seed: 2);
        var upload = () => device.Kernels[GgmlType.Q8_0].Upload(matrix.Weights);
        upload.Should().Throw<ArgumentException>().WithMessage("*Q4_0*Q8_0*");
    }

    [DeviceTheory]
    [MemberData(nameof(AllTypes))]
    public void DeviceBytesIsWhatUploadTakes(GgmlType type)
    {
        var kernels = device.Kernels[type];
        using var matrix = new QuantizedMatrix(type, Rows, ColsFor(type), seed: 1);
        using var w = kernels.Upload(matrix.Weights);
        w.Bytes.Should().Be(kernels.DeviceBytes(Rows, matrix.Cols));
        // Re-packing adds at most the two bytes of padding per block.
        w.Bytes.Should().BeLessThanOrEqualTo(matrix.Bytes.Length + 2L * Rows * matrix.Cols / type.Info().BlockSize);
    }

    [DeviceFact]
    public void RegistryOffersEveryImplementedType()
    {
        device.Kernels.Keys.Should().BeEquivalentTo(Types);
        QuantizedWeightKernels.Factories(device.Accelerator).Select(f => f.Type).Should().BeEquivalentTo(Types);
    }
}
