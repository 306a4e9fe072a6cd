using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Engine.Conversion;
using Engine.Convert;
using Engine.Convert.Presets;
using Engine.Convert.Quant;
using Engine.Convert.Safetensors;
using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Formats.HuggingFace;
using Engine.Formats.Safetensors;
using Engine.Models;
using Engine.Tests.Safetensors;
using Engine.Tests.Support;

namespace Engine.Tests.Gptq;

/// <summary>`engine-convert synth --format gptq|awq` on the test shapes (the in-repo 512-token vocabulary): the folders
/// are what the loader reads (every weight the formula gives from the file is the synthesized float weight rounded to
/// its group's grid, and the loader's own dequantization agrees bit for bit), they run to the logits of a plain F32
/// folder of their dequantized weights, and a symmetric one converts to a Q4_0 GGUF holding the loader's very rows.</summary>
public sealed class GptqSynthTests : IDisposable
{
    readonly string _root = Directory.CreateTempSubdirectory("engine-gptq-synth-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    static string FixtureVocab => TestPaths.Repo("Engine.Tests", "Fixtures", "fx-qwen3-F32.gguf");

    string Synth(string preset, string name, Int4Settings? int4, string type = "F16")
    {
        string folder = Path.Combine(_root, name);
        SafetensorsSynthesizer.Write(new SynthOptions(PresetCatalog.Find(preset)!, OutputType.Find(type)!, folder)
            { VocabPath = FixtureVocab, PoolLength = 1 << 16, Seed = 3, Int4 = int4 }, null);
        return folder;
    }

    static readonly int[] Tokens = [1, 15, 200, 7, 311, 42, 99, 5, 128, 64, 3, 500];

    static float[] Logits(string folder, bool floatActivations, bool roundHead = true)
    {
        using var model = LoadedModel.Open(folder, new ModelOptions
        {
            Threads = 2, QuantizedCheckpointFloatActivations = floatActivations, RoundCheckpointOutputHead = roundHead,
        });
        using var cache = model.Model.CreateCache(Tokens.Length);
        var logits = new float[Tokens.Length * model.Config.VocabSize];
        model.Model.Forward(Tokens, 0, cache, logits);
        return logits;
    }

    public static TheoryData<string, Int4Method, int, bool, bool> Variants() => new()
    {
        { "test-qwen3", Int4Method.Gptq, 128, true, false },   // sym, no act-order: exactly Q4_0
        { "test-qwen2", Int4Method.Gptq, 32, false, true },    // asym, act-order, row length 320
        { "test-qwen2", Int4Method.Gptq, -1, true, true },     // one group per row, act-order
        { "test-qwen3", Int4Method.Awq, 64, false, false },
        { "test-qwen3moe", Int4Method.Awq, 128, false, false }, // per-expert linears
    };

    [Theory]
    [MemberData(nameof(Variants))]
    public void A_synthesized_folder_is_the_float_weights_on_the_4_bit_grid_and_runs_like_them(string preset, Int4Method method, int groupSize, bool sym, bool actOrder)
    {
        var settings = new Int4Settings(method, groupSize, sym, actOrder);
        string folder = Synth(preset, "q", settings), floats = Synth(preset, "f32", null, "F32");
        var config = HfQuantizationConfig.Load(folder)!;
        config.Method.Should().Be(method == Int4Method.Gptq ? HfQuantMethod.Gptq : HfQuantMethod.Awq);
        config.GroupSize.Should().Be(groupSize);
        config.Sym.Should().Be(sym);
        config.DescAct.Should().Be(actOrder);

        var plain = new SafetensorsBuilder();
        int linears = 0;
        using (var model = SafetensorsModel.Open(folder))
        using (var original = SafetensorsModel.Open(floats))
        using (var loader = new QuantizedLinearSource(model, config, _ => null, tiedOutput: false, floatActivations: true))
        {
            var gIdx = new Dictionary<string, int[]>();
            foreach (var info in model.Tensors)
            {
                if (!info.Name.EndsWith(".qweight", StringComparison.Ordinal))
                {
                    if (!info.Name.EndsWith(".qzeros") && !info.Name.EndsWith(".scales") && !info.Name.EndsWith(".g_idx"))
                        plain.AddF32(info.Name, info.Shape.ToArray(), WeightLoader.ToFloats(model.GetView(info.Name)));
                    continue;
                }
                string prefix = info.Name[..^".qweight".Length];
                // The test's own reader (FORMATS.md's formulas, in double) and the loader's agree bit for bit...
                var expected = GptqRepackTests.Reference(model, prefix, method == Int4Method.Gptq, groupSize, out int inputs, out int outputs);
                var dequantized = loader.Dequantize(prefix);
                var w = WeightLoader.ToFloats(original.GetView(prefix + ".weight"));
                var scales = MemoryMarshal.Cast<byte, Half>(model.GetView(prefix + ".scales").Bytes);
                int[] group = method == Int4Method.Gptq
                    ? MemoryMarshal.Cast<byte, int>(model.GetView(prefix + ".g_idx").Bytes).ToArray()
                    : Enumerable.Range(0, inputs).Select(i => i / groupSize).ToArray();
                for (int o = 0; o < outputs; o++)
                    for (int i = 0; i < inputs; i++)
                    {
                        float value = dequantized[(long)o * inputs + i];
                        if (value != expected[o, i])
                            throw new Xunit.Sdk.XunitException($"{prefix}[{o}, {i}]: loader {value}, formula {expected[o, i]}");
                        // ...and each weight is the synthesized float on its group's grid: a code or zero in the wrong
                        // place would be off by whole steps.
                        double step = (double)scales[group[i] * outputs + o];
                        if (Math.Abs(value - w[(long)o * inputs + i]) > 0.52 * step)
                            throw new Xunit.Sdk.XunitException($"{prefix}[{o}, {i}]: {value} is more than half a step ({step}) from the float weight {w[(long)o * inputs + i]}");
                    }
                plain.AddF32(prefix + ".weight", [outputs, inputs], dequantized);
                if (actOrder) gIdx[prefix] = group;
                linears++;
            }
            linears.Should().Be(model.Tensors.Count(t => t.Name.EndsWith("_proj.qweight", StringComparison.Ordinal))).And.BeGreaterThan(0);
            if (actOrder && groupSize != -1) // one group per row has nothing to permute: g_idx is all 0
            {
                // Act-order as real checkpoints have it: a permuted grouping, shared by the linears that read one input.
                gIdx["model.layers.0.self_attn.q_proj"].Should().NotBeInAscendingOrder();
                gIdx["model.layers.0.self_attn.k_proj"].Should().Equal(gIdx["model.layers.0.self_attn.q_proj"]);
                gIdx["model.layers.0.mlp.up_proj"].Should().Equal(gIdx["model.layers.0.mlp.gate_proj"]);
                gIdx["model.layers.0.mlp.down_proj"].Should().NotEqual(gIdx["model.layers.0.mlp.gate_proj"]);
            }
        }
        string reference = Directory.CreateDirectory(Path.Combine(_root, "dequantized")).FullName;
        File.WriteAllBytes(Path.Combine(reference, "model.safetensors"), plain.Build());
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
        json.Remove("quantization_config");
        File.WriteAllText(Path.Combine(reference, "config.json"), json.ToJsonString());

        var expectedLogits = Logits(reference, false);
        LogitCompare.MaxAbsDiff(Logits(folder, true), expectedLogits).Should().BeLessThanOrEqualTo(1e-3);
        LogitCompare.Nmse(Logits(folder, false), expectedLogits).Should().BeLessThanOrEqualTo(preset.Contains("moe") ? 5e-2 : 2e-3);
    }

    [Theory]
    [InlineData("test-qwen2", true, "F16")] // tied embedding: the head is the F16 embedding; rows of 320, so Q8_0
    [InlineData("test-llama", false, "F16")] // separate F16 lm_head; rows of 256, so Q6_K
    [InlineData("test-llama", false, "BF16")]
    public void The_fast_mode_multiplies_with_the_float_head_rounded_as_llama_quantize_rounds_it(string preset, bool tied, string headType)
    {
        string folder = Synth(preset, "head", new Int4Settings(Int4Method.Gptq, 64), headType);
        var stored = headType == "BF16" ? GgmlType.BF16 : GgmlType.F16;
        using var fast = LoadedModel.Open(folder, new ModelOptions { Threads = 2 });
        using var exact = LoadedModel.Open(folder, new ModelOptions { Threads = 2, QuantizedCheckpointFloatActivations = true });
        using var kept = LoadedModel.Open(folder, new ModelOptions { Threads = 2, RoundCheckpointOutputHead = false });
        var head = exact.Model.Weights.Output;
        head.Type.Should().Be(stored, "the float mode keeps the stored head");
        kept.Model.Weights.Output.Type.Should().Be(stored, "switched off, the stored head is kept");
        var rounded = fast.Model.Weights.Output;
        // llama_tensor_get_type: Q6_K for the output of a Q4_0 model, Q8_0 where rows are not whole 256-blocks.
        var type = head.Cols % 256 == 0 ? GgmlType.Q6_K : GgmlType.Q8_0;
        rounded.Type.Should().Be(type);
        rounded.Quantized.Should().BeNull("a plain quantized matrix, run by that type's kernels");
        if (tied) fast.Model.Weights.TokenEmbedding.Should().BeSameAs(rounded, "one copy: the lookups read the rounded rows too");
        else fast.Model.Weights.TokenEmbedding.Type.Should().Be(stored, "a separate embedding is kept as stored");
        fast.QuantizedCheckpoint.Should().EndWith($"; output head {headType} rounded to {type} at load");
        exact.QuantizedCheckpoint.Should().NotContain("output head");

        // Row by row the bytes are ggml's reference rounding of the stored row.
        var row = new float[head.Cols];
        var expected = new byte[Engine.Quantization.RowEncoder.RowBytes(type, head.Cols)];
        var actual = new byte[expected.Length];
        for (int r = 0; r < head.Rows; r += 37)
        {
            Engine.Quantization.RowFormats.For(stored).DequantizeRow(head.View.Bytes.Slice((int)(r * head.RowBytes), (int)head.RowBytes), row);
            if (type == GgmlType.Q6_K) Engine.Quantization.Q6_KFormat.Instance.QuantizeRowReference(row, expected);
            else Engine.Quantization.Q8_0Format.Instance.QuantizeRowReference(row, expected);
            rounded.View.ReadBytes(r * expected.Length, actual);
            actual.Should().Equal(expected, $"row {r}");
        }

        // The rounding moves the logits by a step of its type (Q8_0: 1/254 of a 32-block's largest value, as the 8-bit
        // activations do; Q6_K: 1/64 of a 16-weight sub-block's, as the Q4_0 GGUF's head does), and the whole fast mode
        // stays well inside the 8-bit mode's bar of NMSE 2e-3 against the exact one.
        var withStoredHead = Logits(folder, false, roundHead: false);
        var fastLogits = Logits(folder, false);
        double fromRounding = LogitCompare.Nmse(fastLogits, withStoredHead);
        double fromActivations = LogitCompare.Nmse(withStoredHead, Logits(folder, true));
        string measured = $"the head's rounding (NMSE {fromRounding:E2}) against the activations' ({fromActivations:E2})";
        if (type == GgmlType.Q8_0) fromRounding.Should().BeLessThan(2 * fromActivations, measured);
        fromRounding.Should().BeLessThan(2e-3 / 4, measured);
        LogitCompare.Nmse(fastLogits, Logits(folder, true)).Should().BeLessThan(2e-3 / 2, measured);
    }

    [Fact]
    public void A_tied_embedding_looks_up_single_rounded_rows_without_making_the_whole_head_again()
    {
        // test-qwen3: tied, rows of 256, so the head (and the embedding) is Q6_K, which the CPU backend repacks in chunks.
        string folder = Synth("test-qwen3", "tied", new Int4Settings(Int4Method.Gptq, 64));
        using var fast = LoadedModel.Open(folder, new ModelOptions { Threads = 2 });
        using var exact = LoadedModel.Open(folder, new ModelOptions { Threads = 2, QuantizedCheckpointFloatActivations = true });
        var rounded = fast.Model.Weights.Output;
        rounded.Type.Should().Be(GgmlType.Q6_K);
        fast.Model.Weights.TokenEmbedding.Should().BeSameAs(rounded);

        var embedded = new float[Tokens.Length * rounded.Cols];
        using (fast.Model.Hooks.Add("inp_embd", (context, values) => values.CopyTo(embedded)))
        {
            using var cache = fast.Model.CreateCache(Tokens.Length);
            fast.Model.Forward(Tokens, 0, cache, new float[Tokens.Length * fast.Config.VocabSize]);
        }
        if (Engine.Quantization.Simd.Avx2Fma)
            rounded.View.HoldsComputedBytes.Should().BeFalse("the repacked copy holds the head; each lookup made its one row");

        // Each looked-up row is the stored row rounded to Q6_K by ggml's reference quantizer, then read back.
        var stored = exact.Model.Weights.Output;
        var row = new float[stored.Cols];
        var bytes = new byte[Engine.Quantization.RowEncoder.RowBytes(GgmlType.Q6_K, stored.Cols)];
        var expected = new float[stored.Cols];
        for (int t = 0; t < Tokens.Length; t++)
        {
            Engine.Quantization.RowFormats.For(stored.Type).DequantizeRow(stored.View.Bytes.Slice((int)(Tokens[t] * stored.RowBytes), (int)stored.RowBytes), row);
            Engine.Quantization.Q6_KFormat.Instance.QuantizeRowReference(row, bytes);
            Engine.Quantization.RowFormats.For(GgmlType.Q6_K).DequantizeRow(bytes, expected);
            embedded.AsSpan(t * stored.Cols, stored.Cols).ToArray().Should().Equal(expected, $"token {Tokens[t]}");
        }
    }

    [Fact]
    public void Synthesis_is_deterministic_and_the_seed_matters()
    {
        var settings = new Int4Settings(Int4Method.Gptq, 32, Symmetric: false, ActOrder: true);
        string a = Synth("test-qwen2", "a", settings), b = Synth("test-qwen2", "b", settings);
        File.ReadAllBytes(Path.Combine(a, "model.safetensors")).Should().Equal(File.ReadAllBytes(Path.Combine(b, "model.safetensors")));
        File.ReadAllText(Path.Combine(a, "config.json")).Should().Be(File.ReadAllText(Path.Combine(b, "config.json")));
    }

    [Fact]
    public void Gptq_files_hold_autogptq_v1_tensors_and_config()
    {
        string folder = Synth("test-qwen3", "sym", new Int4Settings(Int4Method.Gptq));
        using var model = SafetensorsModel.Open(folder);
        const string q = "model.layers.1.self_attn.q_proj";
        // File shapes (PyTorch order): qweight [in/8, out], qzeros [groups, out/8], scales [groups, out], g_idx [in].
        model.GetView(q + ".qweight").Shape.Reverse().Should().Equal(256 / 8, 256);
        model.GetView(q + ".qzeros").Shape.Reverse().Should().Equal(2, 256 / 8);
        model.GetView(q + ".scales").Shape.Reverse().Should().Equal(2, 256);
        model.GetView(q + ".scales").Type.Should().Be(GgmlType.F16);
        MemoryMarshal.Cast<byte, int>(model.GetView(q + ".g_idx").Bytes).ToArray().Should().Equal(Enumerable.Range(0, 256).Select(i => i / 128));
        // Symmetric v1: zero 8 stored as 7 in every nibble.
        MemoryMarshal.Cast<byte, uint>(model.GetView(q + ".qzeros").Bytes).ToArray().Should().OnlyContain(w => w == 0x77777777u);
        model.Contains(q + ".weight").Should().BeFalse();
        model.GetView("model.embed_tokens.weight").Type.Should().Be(GgmlType.F16);
        var quantization = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!["quantization_config"]!;
        quantization["quant_method"]!.GetValue<string>().Should().Be("gptq");
        quantization["checkpoint_format"]!.GetValue<string>().Should().Be("gptq");
        quantization["desc_act"]!.GetValue<bool>().Should().BeFalse();
        quantization["sym"]!.GetValue<bool>().Should().BeTrue();
    }

    /// <summary>Needs ../shared for a tokenizer: the synthesized test shapes carry none, and a GGUF must have one.</summary>
    [SharedFact]
    public void A_symmetric_folder_converts_to_a_q4_0_gguf_of_the_loaders_rows_with_identical_logits()
    {
        string folder = Synth("test-qwen2", "sym", new Int4Settings(Int4Method.Gptq, 64));
        foreach (var name in new[] { "tokenizer.model", "tokenizer_config.json" }) // the same 512-token vocabulary
            File.Copy(TestPaths.Shared("fixtures", "hf", "fx-qwen2-F32-hf", name)!, Path.Combine(folder, name));
        string gguf = Path.Combine(_root, "sym.gguf");
        var log = new List<string>();
        HfToGgufConverter.Convert(folder, gguf, new ConvertOptions { Log = log.Add });
        log.Should().ContainSingle().Which.Should().Contain("carried over to Q4_0 unchanged (lossless)");

        using (var file = GgufFile.Open(gguf))
        using (var model = SafetensorsModel.Open(folder))
        using (var loader = new QuantizedLinearSource(model, HfQuantizationConfig.Load(folder)!, _ => null, tiedOutput: true, floatActivations: false))
        {
            int checkedMatrices = 0;
            foreach (var t in file.Tensors)
            {
                var view = file.GetTensor(t.Name);
                var repacked = loader.TryMatrix(t.Name, (int)view.Shape[0], view.Shape.Count > 1 ? (int)view.Shape[1] : 1);
                if (repacked is null)
                {
                    view.Type.Should().BeOneOf([GgmlType.F32, GgmlType.F16], t.Name);
                    continue;
                }
                view.Type.Should().Be(GgmlType.Q4_0, t.Name);
                repacked.Quantized!.ZeroCorrection.Should().BeNull();
                view.Bytes.SequenceEqual(repacked.View.Bytes).Should().BeTrue($"{t.Name} must hold the loader's Q4_0 rows");
                checkedMatrices++;
            }
            checkedMatrices.Should().Be(2 * 7);
            file.GetTensor("token_embd.weight").Type.Should().Be(GgmlType.F16, "the folder's F16 embedding is kept as it is");
        }

        using var fromGguf = LoadedModel.Open(gguf, new ModelOptions { Threads = 2 });
        using var cache = fromGguf.Model.CreateCache(Tokens.Length);
        var logits = new float[Tokens.Length * fromGguf.Config.VocabSize];
        fromGguf.Model.Forward(Tokens, 0, cache, logits);
        // The converted file keeps the folder's F16 head, which the folder's fast mode would round to Q6_K.
        logits.Should().Equal(Logits(folder, false, roundHead: false), "the same Q4_0 rows through the same kernels");
    }

    [Fact]
    public void Synth_options_for_4_bit_folders_are_checked()
    {
        string[] Args(params string[] extra) => ["--preset", "test-qwen3", "-o", Path.Combine(_root, "x"), .. extra];
        var gptq = CommandLine.ParseSynth(Args("--format", "gptq", "--act-order", "--asym", "--group-size", "32"));
        gptq.Type.Name.Should().Be("F16", "the other tensors default to F16, as checkpoints keep them");
        gptq.Int4.Should().Be(new Int4Settings(Int4Method.Gptq, 32, Symmetric: false, ActOrder: true));
        CommandLine.ParseSynth(Args("--format", "awq")).Int4.Should().Be(new Int4Settings(Int4Method.Awq, 128, Symmetric: false));
        CommandLine.ParseSynth(Args("--format", "gptq", "--group-size", "-1")).Int4!.GroupSize.Should().Be(-1);
        foreach (var bad in new[]
        {
            Args("--format", "awq", "--act-order"), Args("--format", "awq", "--asym"), Args("--format", "awq", "--group-size", "-1"),
            Args("--type", "F16", "--act-order"), Args("--format", "gptq", "--type", "Q4_0"), Args("--format", "gptq", "--group-size", "0"),
            Args("--format", "gptq", "--group-size", "x"),
        })
            FluentActions.Invoking(() => CommandLine.ParseSynth(bad)).Should().Throw<ConvertException>(string.Join(' ', bad));
        // A group size that does not divide a width is refused before anything is written.
        FluentActions.Invoking(() => Synth("test-qwen2", "g128", new Int4Settings(Int4Method.Gptq, 128)))
            .Should().Throw<ConvertException>().WithMessage("*does not divide the input width 320*");
    }
}
