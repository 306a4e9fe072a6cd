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
        doc.RootElement.GetProperty("quantization").GetString().Should().Contain(expected);
        doc.RootElement.GetProperty("quantized_linears").GetString().Should().Be("14");
        doc.RootElement.GetProperty("hyperparameters").GetProperty("output").GetString().Should().Be("separate output.weight");
    }
}
