using System.Buffers.Binary;
using Engine.Backends.Cpu;
using Engine.Formats;
using Engine.Formats.HuggingFace;
using Engine.Formats.Safetensors;
using Engine.Models;
using Engine.Quantization;
using Engine.Tests.Support;

namespace Engine.Tests.Gptq;

/// <summary>The load-time repack of GPTQ / AWQ layers into Q4_0 rows plus zero-point terms, against a scalar reader
/// written here from FORMATS.md's formulas (word by word, in double), and the CPU matmul of a repacked layer (input
/// gather, zero points, both activation modes) against the reference product.</summary>
public class GptqRepackTests
{
    static readonly int[] AwqNibble = [0, 4, 1, 5, 2, 6, 3, 7];

    /// <summary>W[o, i] by the formulas of FORMATS.md: GPTQ v1 scales[g_idx[i], o]·(q − (zs + 1)), AWQ
    /// scales[i / G, o]·(q − z) with AWQ's interleave.</summary>
    internal static double[,] Reference(SafetensorsModel model, string prefix, bool gptq, int groupSize, out int inputs, out int outputs)
    {
        var qweight = model.GetView(prefix + ".qweight");
        var qzeros = model.GetView(prefix + ".qzeros").Bytes;
        var scales = model.GetView(prefix + ".scales").Bytes;
        outputs = (int)(gptq ? qweight.Shape[0] : qweight.Shape[0] * 8);
        inputs = (int)(gptq ? qweight.Shape[1] * 8 : qweight.Shape[1]);
        var words = qweight.Bytes;
        var gIdx = gptq ? model.GetView(prefix + ".g_idx").Bytes : default;
        var w = new double[outputs, inputs];
        for (int i = 0; i < inputs; i++)
        {
            int g = gptq ? BinaryPrimitives.ReadInt32LittleEndian(gIdx[(i * 4)..]) : i / groupSize;
            for (int o = 0; o < outputs; o++)
            {
                uint word = gptq ? BinaryPrimitives.ReadUInt32LittleEndian(words[((i / 8 * outputs + o) * 4)..])
                                 : BinaryPrimitives.ReadUInt32LittleEndian(words[((i * (outputs / 8) + o / 8) * 4)..]);
                int q = (int)(word >> (4 * (gptq ? i % 8 : AwqNibble[o % 8])) & 0xF);
                uint zword = BinaryPrimitives.ReadUInt32LittleEndian(qzeros[((g * (outputs / 8) + o / 8) * 4)..]);
                int z = gptq ? (int)(zword >> (4 * (o % 8)) & 0xF) + 1 : (int)(zword >> (4 * AwqNibble[o % 8]) & 0xF);
                double s = (double)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(scales[((g * outputs + o) * 2)..]));
                w[o, i] = s * (q - z);
            }
        }
        return w;
    }

    static readonly string[] Projections =
        ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];

    [SharedTheory]
    [MemberData(nameof(GptqFixtureTests.Folders), MemberType = typeof(GptqFixtureTests))]
    public void Every_repacked_weight_equals_the_formula_exactly(string name)
    {
        string folder = Path.Combine(GptqFixtureTests.FixtureRoot, name);
        var config = HfQuantizationConfig.Load(folder)!;
        bool gptq = config.Method == HfQuantMethod.Gptq;
        using var model = SafetensorsModel.Open(folder);
        var rng = new Random(19);
        int checkedLayers = 0;
        foreach (var projection in Projections)
            for (int layer = 0; layer < 2; layer++)
            {
                string prefix = $"model.layers.{layer}.{projection}";
                var expected = Reference(model, prefix, gptq, config.GroupSize, out int inputs, out int outputs);
                // Arbitrary row and input orders: the repack must place every weight where they say.
                var rowOrder = Enumerable.Range(0, outputs).OrderBy(_ => rng.Next()).ToArray();
                int[]? inputOrder = null;
                if (gptq && config.DescAct)
                {
                    var g = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(model.GetView(prefix + ".g_idx").Bytes).ToArray();
                    inputOrder = Enumerable.Range(0, inputs).OrderBy(i => g[i]).ToArray(); // stable: what the loader must use
                    g.Should().NotBeInAscendingOrder("the act-order fixture's g_idx is non-monotonic");
                }
                var bytes = QuantizedLinearSource.Repack(model.GetView(prefix + ".qweight"), model.GetView(prefix + ".qzeros"), model.GetView(prefix + ".scales"),
                    config.Method, inputs, outputs, config.GroupRows(inputs), inputOrder, rowOrder, out var correction);
                if (gptq && config.Sym) correction.Should().BeNull("symmetric GPTQ is exactly Q4_0");
                else correction.Should().NotBeNull();
                int blocks = inputs / 32;
                var row = new float[inputs];
                for (int r = 0; r < outputs; r++)
                {
                    Q4_0Format.Instance.DequantizeRowReference(bytes.AsSpan(r * blocks * 18, blocks * 18), row);
                    for (int j = 0; j < inputs; j++)
                    {
                        int groups = inputs / config.GroupRows(inputs);
                        double value = row[j] + (correction is null ? 0 : correction[r * groups + j / config.GroupRows(inputs)]);
                        int i = inputOrder is null ? j : inputOrder[j];
                        if (value != expected[rowOrder[r], i])
                            throw new Xunit.Sdk.XunitException($"{prefix}: row {r} column {j} is {value}, the formula gives {expected[rowOrder[r], i]}");
                    }
                }
                checkedLayers++;
            }
        checkedLayers.Should().Be(14);
    }

    [SharedTheory]
    [InlineData("fx-llama-gptq-4bit-g32-actorder", true)]
    [InlineData("fx-llama-gptq-4bit-g32-actorder", false)]
    [InlineData("fx-llama-awq-4bit-g128", true)]
    [InlineData("fx-llama-awq-4bit-g128", false)]
    public void A_repacked_layer_multiplies_like_the_reference(string name, bool floatActivations)
    {
        string folder = Path.Combine(GptqFixtureTests.FixtureRoot, name);
        var config = HfQuantizationConfig.Load(folder)!;
        using var model = SafetensorsModel.Open(folder);
        using var source = new QuantizedLinearSource(model, config, _ => null, tiedOutput: false, floatActivations);
        var matrix = source.TryMatrix("blk.1.attn_q.weight", 256, 256)!;
        matrix.Quantized!.ZeroCorrection.Should().NotBeNull();
        (matrix.Quantized.InputOrder is not null).Should().Be(config.DescAct, "act-order layers read their input sorted by group");
        var expected = Reference(model, "model.layers.1.self_attn.q_proj", config.Method == HfQuantMethod.Gptq, config.GroupSize, out int k, out int n);

        const int tokens = 5;
        var rng = new Random(7);
        var x = Enumerable.Range(0, tokens * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var y = new float[tokens * n];
        using var split = new WorkSplit(2);
        new MatMulKernels(split).MatMul(matrix, x, tokens, y);

        var reference = new float[tokens * n];
        for (int t = 0; t < tokens; t++)
            for (int o = 0; o < n; o++)
            {
                double sum = 0;
                for (int i = 0; i < k; i++) sum += expected[o, i] * x[t * k + i];
                reference[t * n + o] = (float)sum;
            }
        if (floatActivations)
            LogitCompare.MaxAbsDiff(y, reference).Should().BeLessThan(1e-4, "float activations leave only float32 rounding");
        else
        {
            double nmse = LogitCompare.Nmse(y, reference);
            nmse.Should().BeLessThan(1e-3, "Q8_0 activations cost about 2^-8 relative per block").And.BeGreaterThan(0, "the activations were quantized");
        }
    }
}
