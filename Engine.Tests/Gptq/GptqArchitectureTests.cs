using System.Buffers.Binary;
using System.Text.Json.Nodes;
using Engine.Formats.Safetensors;
using Engine.Models;
using Engine.Tests.Safetensors;
using Engine.Tests.Support;

namespace Engine.Tests.Gptq;

/// <summary>Qwen2 (q/k/v biases) and Qwen3-MoE (q/k norms, eight experts per layer) as asymmetric act-order GPTQ
/// folders, written here from the shared F32/F16 fixtures the way AutoGPTQ packs them (random input order per linear,
/// groups of 32 or one group per input, v1 zeros), beside a plain F32 folder of exactly the dequantized weights. The plain folder runs the
/// engine's validated float path (its fixtures match llama.cpp); the GPTQ folder with float activations must give the
/// same logits to float rounding. This covers the expert names (mlp.experts.E.*_proj) and down's row order per expert.</summary>
public sealed class GptqArchitectureTests : IDisposable
{
    readonly string _root = Directory.CreateTempSubdirectory("engine-gptq-arch-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    static bool Quantized(string name) =>
        name.EndsWith("_proj.weight", StringComparison.Ordinal) && name.StartsWith("model.layers.", StringComparison.Ordinal);

    /// <summary>Writes root/gptq and root/plain from the shared fixture; returns their paths.</summary>
    internal static (string Gptq, string Plain) Write(string root, string fixture, int groupSize)
    {
        string source = TestPaths.Shared("fixtures", "hf", fixture)!;
        string gptq = Directory.CreateDirectory(Path.Combine(root, "gptq")).FullName, plain = Directory.CreateDirectory(Path.Combine(root, "plain")).FullName;
        var gptqTensors = new SafetensorsBuilder();
        var plainTensors = new SafetensorsBuilder();
        var rng = new Random(19);
        using (var model = SafetensorsModel.Open(source))
            foreach (var info in model.Tensors)
            {
                var values = WeightLoader.ToFloats(model.GetView(info.Name));
                var shape = info.Shape.ToArray();
                if (!Quantized(info.Name))
                {
                    gptqTensors.AddF32(info.Name, shape, values);
                    plainTensors.AddF32(info.Name, shape, values);
                    continue;
                }
                string prefix = info.Name[..^".weight".Length];
                int outputs = (int)shape[0], inputs = (int)shape[1];
                int groupRows = groupSize == -1 ? inputs : groupSize;
                var dequantized = Quantize(values, inputs, outputs, groupRows, rng, out var qweight, out var qzeros, out var scales, out var gIdx);
                gptqTensors.Add(prefix + ".qweight", "I32", [inputs / 8, outputs], qweight)
                    .Add(prefix + ".qzeros", "I32", [inputs / groupRows, outputs / 8], qzeros)
                    .Add(prefix + ".scales", "F16", [inputs / groupRows, outputs], scales)
                    .Add(prefix + ".g_idx", "I32", [inputs], gIdx);
                plainTensors.AddF32(info.Name, shape, dequantized);
            }
        File.WriteAllBytes(Path.Combine(gptq, "model.safetensors"), gptqTensors.Build());
        File.WriteAllBytes(Path.Combine(plain, "model.safetensors"), plainTensors.Build());
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!.AsObject();
        File.WriteAllText(Path.Combine(plain, "config.json"), config.ToJsonString());
        config["quantization_config"] = JsonNode.Parse($$"""{"bits": 4, "group_size": {{groupSize}}, "desc_act": true, "sym": false, "quant_method": "gptq", "checkpoint_format": "gptq"}""");
        File.WriteAllText(Path.Combine(gptq, "config.json"), config.ToJsonString());
        return (gptq, plain);
    }

    /// <summary>AutoGPTQ's asymmetric quantizer over a random act-order grouping; returns the dequantized W [out, in].</summary>
    static float[] Quantize(float[] w, int inputs, int outputs, int groupRows, Random rng, out byte[] qweight, out byte[] qzeros, out byte[] scales, out byte[] gIdx)
    {
        int groups = inputs / groupRows;
        var order = Enumerable.Range(0, inputs).OrderBy(_ => rng.Next()).ToArray(); // order[position] = input row
        var group = new int[inputs];
        for (int p = 0; p < inputs; p++) group[order[p]] = p / groupRows;
        var q = new int[inputs, outputs];
        var s = new Half[groups, outputs];
        var z = new int[groups, outputs];
        for (int g = 0; g < groups; g++)
            for (int o = 0; o < outputs; o++)
            {
                float min = 0, max = 0;
                for (int p = g * groupRows; p < g * groupRows + groupRows; p++) { float v = w[o * inputs + order[p]]; min = Math.Min(min, v); max = Math.Max(max, v); }
                var scale = (Half)Math.Max((max - min) / 15, 1e-5f);
                int zero = Math.Clamp((int)Math.Round(-min / (float)scale), 1, 15);
                s[g, o] = scale; z[g, o] = zero;
                for (int p = g * groupRows; p < g * groupRows + groupRows; p++)
                    q[order[p], o] = Math.Clamp((int)Math.Round(w[o * inputs + order[p]] / (float)scale) + zero, 0, 15);
            }
        qweight = new byte[inputs / 8 * outputs * 4];
        for (int r = 0; r < inputs / 8; r++)
            for (int o = 0; o < outputs; o++)
            {
                uint word = 0;
                for (int k = 0; k < 8; k++) word |= (uint)q[8 * r + k, o] << (4 * k);
                BinaryPrimitives.WriteUInt32LittleEndian(qweight.AsSpan((r * outputs + o) * 4), word);
            }
        qzeros = new byte[groups * outputs / 8 * 4];
        scales = new byte[groups * outputs * 2];
        for (int g = 0; g < groups; g++)
            for (int c = 0; c < outputs / 8; c++)
            {
                uint word = 0;
                for (int k = 0; k < 8; k++) word |= (uint)(z[g, 8 * c + k] - 1) << (4 * k); // v1 stores zero - 1
                BinaryPrimitives.WriteUInt32LittleEndian(qzeros.AsSpan((g * (outputs / 8) + c) * 4), word);
            }
        for (int g = 0; g < groups; g++)
            for (int o = 0; o < outputs; o++) BinaryPrimitives.WriteHalfLittleEndian(scales.AsSpan((g * outputs + o) * 2), s[g, o]);
        gIdx = new byte[inputs * 4];
        for (int i = 0; i < inputs; i++) BinaryPrimitives.WriteInt32LittleEndian(gIdx.AsSpan(i * 4), group[i]);
        var dequantized = new float[outputs * inputs];
        for (int o = 0; o < outputs; o++)
            for (int i = 0; i < inputs; i++) dequantized[o * inputs + i] = (float)s[group[i], o] * (q[i, o] - z[group[i], o]);
        return dequantized;
    }

    [SharedTheory]
    [InlineData("fx-qwen2-F32-hf", 32)]
    [InlineData("fx-qwen2-F32-hf", -1)] // one group over each whole input
    [InlineData("fx-qwen3moe-F16-hf", 32)]
    public void Act_order_gptq_gives_the_logits_of_its_dequantized_weights(string fixture, int groupSize)
    {
        var (gptq, plain) = Write(_root, fixture, groupSize);
        int[] tokens = [1, 15, 200, 7, 311, 42, 99, 5, 128, 64, 3, 500];
        // The stored head kept in both modes: this compares the layers' act-order handling, not the head's rounding
        // (GptqSynthTests and the fixture tests hold that).
        float[] Logits(string folder, bool floatActivations)
        {
            using var model = LoadedModel.Open(folder, new ModelOptions { Threads = 2, QuantizedCheckpointFloatActivations = floatActivations, RoundCheckpointOutputHead = false });
            using var cache = model.Model.CreateCache(tokens.Length);
            var logits = new float[tokens.Length * model.Config.VocabSize];
            model.Model.Forward(tokens, 0, cache, logits);
            return logits;
        }
        var reference = Logits(plain, false);
        LogitCompare.MaxAbsDiff(Logits(gptq, true), reference).Should().BeLessThanOrEqualTo(1e-3);
        // 8-bit activations: close, not exact (an expert choice may flip in the MoE model, hence the looser bound there).
        LogitCompare.Nmse(Logits(gptq, false), reference).Should().BeLessThanOrEqualTo(fixture.Contains("moe") ? 5e-2 : 2e-3);
    }
}
