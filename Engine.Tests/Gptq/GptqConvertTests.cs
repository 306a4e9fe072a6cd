using Engine.Conversion;
using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Formats.HuggingFace;
using Engine.Formats.Safetensors;
using Engine.Models;
using Engine.Tests.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Gptq;

/// <summary>`engine convert` of the GPTQ / AWQ fixture folders: the symmetric one carries over to Q4_0 bit for bit (the
/// loader's rows, llama's q/k rows permuted as llama.cpp's converter does) and runs to exactly the folder's logits;
/// the others are dequantized exactly (F32: the golden within 1e-3) or re-quantized, and the converter says which.</summary>
public sealed class GptqConvertTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("engine-gptq-convert-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string Fixture(string name) => Path.Combine(GptqFixtureTests.FixtureRoot, name);

    [SharedFact]
    public void A_symmetric_gptq_folder_carries_over_to_q4_0_exactly()
    {
        string folder = Fixture("fx-llama-gptq-4bit-g128"), output = Path.Combine(_dir, "g128.gguf");
        var log = new List<string>();
        HfToGgufConverter.Convert(folder, output, new ConvertOptions { Log = log.Add });
        log.Should().ContainSingle().Which.Should().Contain("carried over to Q4_0 unchanged (lossless)");

        using (var gguf = GgufFile.Open(output))
        using (var model = SafetensorsModel.Open(folder))
        using (var loader = new QuantizedLinearSource(model, HfQuantizationConfig.Load(folder)!, _ => null, tiedOutput: false, floatActivations: false))
        {
            ((uint)gguf.Metadata[GgufKeys.FileType].Value).Should().Be(2u, "MOSTLY_Q4_0");
            int matrices = 0;
            foreach (var t in gguf.Tensors.Where(t => t.Name.StartsWith("blk.") && t.Name.EndsWith(".weight") && !t.Name.Contains("norm")))
            {
                var view = gguf.GetTensor(t.Name);
                view.Type.Should().Be(GgmlType.Q4_0, t.Name);
                var rows = loader.TryMatrix(t.Name, (int)view.Shape[0], (int)view.Shape[1])!.View.Bytes;
                int rowBytes = (int)view.Shape[0] / 32 * 18, count = (int)view.Shape[1];
                // llama's q and k: llama.cpp's converter moves rows from rotate-half order to adjacent pairs; the engine's
                // folder loader keeps rotate-half and runs NeoX RoPE instead.
                int heads = t.Name.EndsWith("attn_q.weight") ? 4 : t.Name.EndsWith("attn_k.weight") ? 2 : 0;
                for (int r = 0; r < count; r++)
                {
                    int from = r;
                    if (heads > 0)
                    {
                        int headDim = count / heads, within = r % headDim;
                        from = r / headDim * headDim + within % 2 * (headDim / 2) + within / 2;
                    }
                    if (!view.Bytes.Slice(r * rowBytes, rowBytes).SequenceEqual(rows.Slice(from * rowBytes, rowBytes)))
                        throw new Xunit.Sdk.XunitException($"{t.Name} row {r} differs from the loader's row {from}");
                }
                matrices++;
            }
            matrices.Should().Be(14);
            gguf.GetTensor("token_embd.weight").Bytes.SequenceEqual(model.GetView("model.embed_tokens.weight").Bytes).Should().BeTrue("F32 kept as it is");
        }

        // The same rows and kernels: the folder's 8-bit-activation logits, exactly (with the stored head, which the file
        // keeps and the folder's fast mode would round to Q8_0).
        var golden = GoldenCase.LoadFixture(GptqFixtureTests.FixtureRoot, "fx-llama-gptq-4bit-g128");
        using var fromGguf = LoadedModel.Open(output, new ModelOptions { Threads = 2 });
        using var fromFolder = GptqFixtureTests.Open("fx-llama-gptq-4bit-g128", floatActivations: false, roundHead: false);
        GptqFixtureTests.PromptLogits(fromGguf.Model, golden).Should().Equal(GptqFixtureTests.PromptLogits(fromFolder.Model, golden));
    }

    [SharedTheory]
    [InlineData("fx-llama-gptq-4bit-g32-actorder")]
    [InlineData("fx-llama-awq-4bit-g128")]
    public void Other_folders_dequantize_exactly_to_f32(string name)
    {
        string output = Path.Combine(_dir, name + ".gguf");
        var log = new List<string>();
        HfToGgufConverter.Convert(Fixture(name), output, new ConvertOptions("F32") { Log = log.Add });
        log.Should().ContainSingle().Which.Should().Contain("dequantized to F32 (exact)");
        using var model = LoadedModel.Open(output, new ModelOptions { Threads = 2 });
        var golden = GoldenCase.LoadFixture(GptqFixtureTests.FixtureRoot, name);
        var logits = GptqFixtureTests.PromptLogits(model.Model, golden);
        LogitCompare.MaxAbsDiff(logits, golden.Logits).Should().BeLessThanOrEqualTo(1e-3, "each weight is an f16 scale times a small integer: exact in F32");
    }

    [SharedTheory]
    [InlineData("fx-llama-gptq-4bit-g32-actorder", null, "Q4_0")]
    [InlineData("fx-llama-awq-4bit-g128", null, "Q4_0")]
    [InlineData("fx-llama-gptq-4bit-g128", "Q4_K_M", "Q4_K_M")]
    public void Others_are_re_quantized_and_the_converter_says_it_is_not_lossless(string name, string? type, string expected)
    {
        string output = Path.Combine(_dir, name + ".gguf");
        var log = new List<string>();
        HfToGgufConverter.Convert(Fixture(name), output, new ConvertOptions(type) { Log = log.Add });
        log.Should().ContainSingle().Which.Should().Contain($"re-quantized from dequantized weights to {expected}: not lossless");
        using var gguf = GgufFile.Open(output);
        gguf.GetTensor("blk.0.ffn_up.weight").Type.Should().Be(expected == "Q4_0" ? GgmlType.Q4_0 : GgmlType.Q4_K);
        Directory.GetFiles(_dir).Should().ContainSingle("the F32 intermediate is removed");
        using var model = LoadedModel.Open(output, new ModelOptions { Threads = 2 });
        var golden = GoldenCase.LoadFixture(GptqFixtureTests.FixtureRoot, name);
        // A second 4-bit rounding of random weights: the logits stay recognisably the model's, not exact.
        LogitCompare.Nmse(GptqFixtureTests.PromptLogits(model.Model, golden), golden.Logits).Should().BeLessThan(0.5);
    }

    [SharedFact]
    public void The_cli_says_how_the_4_bit_layers_were_written()
    {
        var exact = CliRunner.Run("convert", Fixture("fx-llama-gptq-4bit-g128"), Path.Combine(_dir, "a.gguf"), "--quiet");
        exact.ExitCode.Should().Be(0, exact.Stderr);
        exact.Stdout.Should().Contain("convert: GPTQ 4-bit g128 sym: the 4-bit codes and f16 scales carried over to Q4_0 unchanged (lossless)");
        var lossy = CliRunner.Run("convert", Fixture("fx-llama-awq-4bit-g128"), Path.Combine(_dir, "b.gguf"), "--quiet");
        lossy.ExitCode.Should().Be(0, lossy.Stderr);
        lossy.Stdout.Should().Contain("re-quantized from dequantized weights to Q4_0: not lossless");
    }
}
