using Engine.Tests.Support;

namespace Engine.Tests.Gptq;

/// <summary>`engine inspect` on the GPTQ / AWQ fixture folders shows the quantization settings and how the engine runs them.</summary>
public class GptqInspectTests
{
    [SharedTheory]
    [InlineData("fx-llama-gptq-4bit-g128", "GPTQ v1 4-bit, group size 128, symmetric (from config.json quantization_config); loaded as Q4_0 rows (exact), CPU and GPU")]
    [InlineData("fx-llama-gptq-4bit-g32-actorder", "GPTQ v1 4-bit, group size 32, asymmetric, act-order (desc_act) (from config.json quantization_config); loaded as Q4_0 rows plus exact zero-point terms and a sorted input order, CPU and GPU")]
    [InlineData("fx-llama-awq-4bit-g128", "AWQ gemm 4-bit, group size 128, zero point (from config.json quantization_config); loaded as Q4_0 rows plus exact zero-point terms, CPU and GPU")]
    public void Inspect_shows_the_quantization_settings(string name, string expected)
    {
        var r = CliRunner.Run("inspect", Path.Combine(GptqFixtureTests.FixtureRoot, name), "--json");
        r.ExitCode.Should().Be(0, r.Stderr);
        using var doc = System.Text.Json.JsonDocument.Parse(r.Stdout);
        doc.RootElement.GetProperty("quantization").GetString().Should().Contain(expected)
            .And.Contain("activations q8 by default (with a float output head rounded at load to Q6_K, as the Q4_0 GGUF stores it), f32 (exact) with --gptq-activations f32");
        doc.RootElement.GetProperty("quantized_linears").GetString().Should().Be("14");
        doc.RootElement.GetProperty("hyperparameters").GetProperty("output").GetString().Should().Be("separate output.weight");
    }

    [SharedTheory]
    [InlineData(null, "activations q8 (fast); output head F32 rounded to Q6_K at load")]
    [InlineData("q8", "activations q8 (fast); output head F32 rounded to Q6_K at load")]
    [InlineData("f32", "activations f32 (exact)")]
    public void Bench_shows_the_activation_mode_the_flag_chose(string? mode, string expected)
    {
        string[] args = ["bench", "--model", Path.Combine(GptqFixtureTests.FixtureRoot, "fx-llama-gptq-4bit-g32-actorder"), "-p", "4", "-n", "2", "-r", "1", "--threads", "1", "--json"];
        var r = CliRunner.Run(mode is null ? args : [.. args, "--gptq-activations", mode]);
        r.ExitCode.Should().Be(0, r.Stderr);
        using var doc = System.Text.Json.JsonDocument.Parse(r.Stdout);
        doc.RootElement.GetProperty("quantized_checkpoint").GetString().Should()
            .Be("GPTQ v1 4-bit, group size 32, asymmetric, act-order (desc_act); " + expected);
        doc.RootElement.GetProperty("file_bytes").GetInt64().Should().BeGreaterThan(1_000_000, "a folder's size is its safetensors files'");
    }

    [SharedFact]
    public void A_bad_activation_mode_is_a_usage_error()
    {
        var r = CliRunner.Run("logits", "--model", Path.Combine(GptqFixtureTests.FixtureRoot, "fx-llama-awq-4bit-g128"), "--tokens", "1 2", "--out",
            Path.Combine(Path.GetTempPath(), "unused.f32"), "--gptq-activations", "f16");
        r.ExitCode.Should().Be(2);
        r.Stderr.Should().Contain("--gptq-activations must be q8 (fast, the default) or f32 (exact), got 'f16'");
    }
}
