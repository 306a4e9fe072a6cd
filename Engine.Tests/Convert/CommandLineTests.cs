using Engine.Convert;
using Engine.Convert.Quant;

namespace Engine.Tests.Convert;

public class CommandLineTests
{
    [Fact]
    public void Synth_options_are_parsed()
    {
        var o = CommandLine.ParseSynth(["--preset", "qwen3-0.6b", "--type", "q4_k_m", "-o", "x.gguf", "--seed", "3", "--layers", "1",
            "--format", "safetensors", "--vocab", "v.gguf", "--force", "--pool", "65536"]);
        o.Preset.Name.Should().Be("qwen3-0.6b");
        o.Preset.Layers.Should().Be(1);
        o.Type.Should().Be(OutputType.Q4_K_M);
        (o.OutputPath, o.Seed, o.Format, o.VocabPath, o.Overwrite, o.PoolLength).Should().Be(("x.gguf", 3UL, OutputFormat.Safetensors, "v.gguf", true, 65536));
    }

    [Theory]
    [InlineData("--type F16 -o x", "--preset is required*")]
    [InlineData("--preset nope --type F16 -o x", "unknown preset 'nope'*qwen2.5-0.5b*")]
    [InlineData("--preset qwen3-0.6b --type Q3_K -o x", "unknown type 'Q3_K'*Q4_K_M*")]
    [InlineData("--preset qwen3-0.6b --type F16 -o x --layers 0", "--layers must be a positive integer*")]
    [InlineData("--preset qwen3-0.6b --type F16", "-o OUT is required")]
    [InlineData("--preset qwen3-0.6b --type F16 -o x --frobnicate", "unknown option '--frobnicate'")]
    public void Mistakes_name_the_option(string args, string message)
    {
        var act = () => CommandLine.ParseSynth(args.Split(' '));
        act.Should().Throw<ConvertException>().WithMessage(message);
    }

    [Fact]
    public void Presets_table_lists_every_preset_with_its_parameter_count()
    {
        var text = new StringWriter();
        PresetTable.Print(text);
        text.ToString().Should().Contain("qwen2.5-0.5b").And.Contain("494.0M").And.Contain("llama3.1-8b").And.Contain("8.03B")
            .And.Contain("qwen3-30b-a3b").And.Contain("30.53B");
    }
}
