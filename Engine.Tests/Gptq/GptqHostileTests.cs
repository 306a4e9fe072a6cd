using System.Buffers.Binary;
using System.Text.Json.Nodes;
using Engine.Formats;
using Engine.Formats.HuggingFace;
using Engine.Formats.Safetensors;
using Engine.Models;
using Engine.Tests.Safetensors;
using Engine.Tests.Support;

namespace Engine.Tests.Gptq;

/// <summary>Broken GPTQ / AWQ folders, each one edit of a fixture's bytes written to a temp folder, are refused with a
/// ModelFormatException naming the tensor or setting; unsupported settings name what is supported.</summary>
public sealed class GptqHostileTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("engine-gptq-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    const string QProj = "model.layers.0.self_attn.q_proj";

    /// <summary>The fixture rewritten with `edit` applied to each tensor (return null to drop it), and its config
    /// changed by `config`.</summary>
    string Variant(string fixture, Func<string, string, long[], byte[], (string DType, long[] Shape, byte[] Data)?> edit, Action<JsonObject>? config = null)
    {
        string source = Path.Combine(GptqFixtureTests.FixtureRoot, fixture);
        var builder = new SafetensorsBuilder();
        using (var model = SafetensorsModel.Open(source))
            foreach (var info in model.Tensors)
                if (edit(info.Name, info.DType.ToString(), info.Shape.ToArray(), model.GetView(info.Name).Bytes.ToArray()) is { } t)
                    builder.Add(info.Name, t.DType, t.Shape, t.Data);
        File.WriteAllBytes(Path.Combine(_folder, "model.safetensors"), builder.Build());
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!.AsObject();
        config?.Invoke(json["quantization_config"]!.AsObject());
        File.WriteAllText(Path.Combine(_folder, "config.json"), json.ToJsonString());
        return _folder;
    }

    static (string, long[], byte[])? Keep(string name, string dtype, long[] shape, byte[] data) => (dtype, shape, data);

    static ModelFormatException Refused(string folder) =>
        FluentActions.Invoking(() => LoadedModel.Open(folder, new ModelOptions { Threads = 1 })).Should().Throw<ModelFormatException>().Which;

    [SharedFact]
    public void The_unedited_copy_loads()
    {
        using var model = LoadedModel.Open(Variant("fx-llama-gptq-4bit-g128", Keep), new ModelOptions { Threads = 1 });
        model.Config.LayerCount.Should().Be(2);
    }

    [SharedFact]
    public void A_qweight_of_the_wrong_shape_is_refused()
    {
        var e = Refused(Variant("fx-llama-gptq-4bit-g128", (name, dtype, shape, data) =>
            name == QProj + ".qweight" ? (dtype, [shape[0], shape[1] / 2], data[..(data.Length / 2)]) : (dtype, shape, data)));
        e.Kind.Should().Be(FormatErrorKind.InvalidShape);
        e.Field.Should().Be(QProj + ".qweight");
    }

    [SharedFact]
    public void A_group_size_that_does_not_divide_the_input_is_refused()
    {
        var e = Refused(Variant("fx-llama-gptq-4bit-g128", Keep, q => q["group_size"] = 96));
        e.Kind.Should().Be(FormatErrorKind.InvalidShape);
        e.Field.Should().EndWith(".qweight");
        e.Message.Should().Contain("group_size 96 does not divide");
    }

    [SharedFact]
    public void A_g_idx_value_outside_the_groups_is_refused()
    {
        var e = Refused(Variant("fx-llama-gptq-4bit-g32-actorder", (name, dtype, shape, data) =>
        {
            if (name != QProj + ".g_idx") return (dtype, shape, data);
            var edited = (byte[])data.Clone();
            BinaryPrimitives.WriteInt32LittleEndian(edited.AsSpan(5 * 4), 8); // 256 inputs / 32 = groups 0..7
            return (dtype, shape, edited);
        }));
        e.Kind.Should().Be(FormatErrorKind.InvalidShape);
        e.Field.Should().Be(QProj + ".g_idx");
        e.Message.Should().Contain("outside the 8 groups");
    }

    [SharedFact]
    public void A_g_idx_giving_a_group_the_wrong_number_of_rows_is_refused()
    {
        var e = Refused(Variant("fx-llama-gptq-4bit-g128", (name, dtype, shape, data) =>
        {
            if (name != QProj + ".g_idx") return (dtype, shape, data);
            var edited = (byte[])data.Clone();
            BinaryPrimitives.WriteInt32LittleEndian(edited.AsSpan(0), 1);
            return (dtype, shape, edited);
        }));
        e.Field.Should().Be(QProj + ".g_idx");
        e.Message.Should().Contain("group 0 127 input rows");
    }

    [SharedFact]
    public void Zeros_of_the_wrong_type_are_refused()
    {
        var e = Refused(Variant("fx-llama-awq-4bit-g128", (name, dtype, shape, data) =>
            name == QProj + ".qzeros" ? ("F32", shape, data) : (dtype, shape, data)));
        e.Kind.Should().Be(FormatErrorKind.UnknownTensorType);
        e.Field.Should().Be(QProj + ".qzeros");
    }

    [SharedFact]
    public void Missing_scales_are_refused()
    {
        var e = Refused(Variant("fx-llama-gptq-4bit-g32-actorder", (name, dtype, shape, data) =>
            name == QProj + ".scales" ? null : (dtype, shape, data)));
        e.Kind.Should().Be(FormatErrorKind.MissingKey);
        e.Field.Should().Be(QProj + ".scales");
    }

    [SharedTheory]
    [InlineData("bits", "8", "bits")]
    [InlineData("checkpoint_format", "\"gptq_v2\"", "checkpoint_format")]
    [InlineData("checkpoint_format", "\"marlin\"", "checkpoint_format")]
    [InlineData("quant_method", "\"bitsandbytes\"", "quant_method")]
    public void Unsupported_gptq_settings_are_refused_naming_the_setting(string key, string value, string field)
    {
        var e = Refused(Variant("fx-llama-gptq-4bit-g128", Keep, q => q[key] = JsonNode.Parse(value)));
        e.Kind.Should().Be(FormatErrorKind.InvalidConfig);
        e.Field.Should().Be("quantization_config." + field);
        e.Message.Should().ContainAny("only", "4-bit");
    }

    [SharedFact]
    public void Exllama_v2_and_awq_gemv_are_refused()
    {
        Refused(Variant("fx-llama-gptq-4bit-g128", Keep, q => q["exllama_config"] = new JsonObject { ["version"] = 2 }))
            .Field.Should().Be("quantization_config.exllama_config.version");
        Refused(Variant("fx-llama-awq-4bit-g128", Keep, q => q["version"] = "gemv"))
            .Message.Should().Contain("only \"gemm\"");
    }

    /// <summary>`engine convert` checks every 4-bit layer before it writes: the same typed errors, and no output (nor
    /// intermediate) file left behind, for the exact Q4_0 path, the dequantizing one and the re-quantizing one.</summary>
    [SharedTheory]
    [InlineData(null)]
    [InlineData("F16")]
    [InlineData("Q4_K_M")]
    public void Convert_refuses_a_broken_folder_and_writes_nothing(string? type)
    {
        string folder = Variant("fx-llama-gptq-4bit-g32-actorder", (name, dtype, shape, data) =>
        {
            if (name != QProj + ".g_idx") return (dtype, shape, data);
            var edited = (byte[])data.Clone();
            BinaryPrimitives.WriteInt32LittleEndian(edited.AsSpan(5 * 4), 8);
            return (dtype, shape, edited);
        });
        string output = Path.Combine(_folder, "out.gguf");
        var e = FluentActions.Invoking(() => Engine.Conversion.HfToGgufConverter.Convert(folder, output, new Engine.Conversion.ConvertOptions(type)))
            .Should().Throw<ModelFormatException>().Which;
        e.Field.Should().Be(QProj + ".g_idx");
        Directory.GetFiles(_folder).Select(Path.GetFileName).Should().BeEquivalentTo(["model.safetensors", "config.json"]);

        var bits = Variant("fx-llama-gptq-4bit-g128", Keep, q => q["bits"] = 8);
        FluentActions.Invoking(() => Engine.Conversion.HfToGgufConverter.Convert(bits, output, new Engine.Conversion.ConvertOptions(type)))
            .Should().Throw<ModelFormatException>().Which.Field.Should().Be("quantization_config.bits");
        File.Exists(output).Should().BeFalse();
    }

    [Fact]
    public void Quantize_config_json_is_read_when_config_json_has_no_block()
    {
        File.WriteAllText(Path.Combine(_folder, "config.json"), "{}");
        File.WriteAllText(Path.Combine(_folder, "quantize_config.json"),
            """{"bits": 4, "group_size": -1, "desc_act": true, "sym": false, "quant_method": "gptq", "checkpoint_format": "gptq"}""");
        var q = HfQuantizationConfig.Load(_folder)!;
        q.Method.Should().Be(HfQuantMethod.Gptq);
        q.GroupRows(512).Should().Be(512, "-1 is one group over the whole input");
        q.DescAct.Should().BeTrue();
        q.Sym.Should().BeFalse();
    }
}
