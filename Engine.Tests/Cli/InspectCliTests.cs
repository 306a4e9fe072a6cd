using Engine.Tests.Support;

namespace Engine.Tests.Cli;

public class InspectCliTests
{
    [Fact]
    public void Inspects_the_shipped_model_as_text_and_json()
    {
        var text = CliRunner.Run("inspect", TestPaths.Repo("models", "stories260K.gguf"));
        text.ExitCode.Should().Be(0, text.Stderr);
        text.Stdout.Should().Contain("architecture: llama").And.Contain("blk.0.attn_q.weight").And.Contain("tokenizer.ggml.tokens");

        var json = CliRunner.Run("inspect", TestPaths.Repo("models", "stories260K.gguf"), "--json");
        json.ExitCode.Should().Be(0, json.Stderr);
        using var doc = System.Text.Json.JsonDocument.Parse(json.Stdout);
        doc.RootElement.GetProperty("format").GetString().Should().Be("GGUF");
        doc.RootElement.GetProperty("tensors").GetArrayLength().Should().Be(48);
        doc.RootElement.GetProperty("hyperparameters").GetProperty("block_count").GetString().Should().Be("5");
    }

    /// <summary>Every GGUF, Safetensors file and Hugging Face folder in ../shared opens (vocab-only GGUFs included).</summary>
    [SharedFact]
    public void Inspects_every_model_file_and_folder_in_shared()
    {
        var targets = new List<string>();
        foreach (var root in new[] { TestPaths.Shared("models"), TestPaths.Shared("fixtures") })
        {
            if (root is null) continue;
            targets.AddRange(Directory.EnumerateFiles(root, "*.gguf", SearchOption.AllDirectories));
            targets.AddRange(Directory.EnumerateFiles(root, "*.safetensors", SearchOption.AllDirectories));
            targets.AddRange(Directory.EnumerateFiles(root, "config.json", SearchOption.AllDirectories).Select(Path.GetDirectoryName)!);
        }
        targets.Should().NotBeEmpty();
        foreach (var target in targets)
        {
            var r = CliRunner.Run("inspect", target, "--json");
            r.ExitCode.Should().Be(0, $"{target}: {r.Stderr}");
            r.Stdout.Should().Contain("\"tensors\"");
        }
    }

    [Theory]
    [InlineData(new byte[0], "too short")]
    [InlineData(new byte[] { (byte)'G', (byte)'G', (byte)'U', (byte)'F' }, "file ends inside version")]
    [InlineData(new byte[] { (byte)'G', (byte)'G', (byte)'U', (byte)'F', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, "version 1")]
    [InlineData(new byte[] { (byte)'G', (byte)'G', (byte)'U', (byte)'F', 3, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0 }, "tensor count")]
    public void A_corrupt_file_gives_one_line_and_exit_code_1(byte[] content, string expected)
    {
        var path = Path.Combine(Path.GetTempPath(), $"engine-corrupt-{Guid.NewGuid():N}.gguf");
        File.WriteAllBytes(path, content);
        try
        {
            var r = CliRunner.Run("inspect", path);
            r.ExitCode.Should().Be(1);
            r.Stdout.Should().BeEmpty();
            r.Stderr.TrimEnd().Split('\n').Should().HaveCount(1, "one clear line, never a stack trace: " + r.Stderr);
            r.Stderr.Should().Contain(expected).And.Contain(path);
            r.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(5));
        }
        finally { File.Delete(path); }
    }
}
