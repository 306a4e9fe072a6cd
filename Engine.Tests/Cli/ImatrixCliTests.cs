using Engine.Formats.Gguf;
using Engine.Tests.Support;

namespace Engine.Tests.Cli;

/// <summary>`engine imatrix` writes what llama-imatrix writes (Engine.Tests/Golden/imatrix, see PROVENANCE.md).</summary>
public class ImatrixCliTests
{
    static readonly string Story = TestPaths.Repo("Engine.Tests", "Golden", "perplexity", "story.txt");
    static readonly string Stories = TestPaths.Repo("models", "stories260K.gguf");

    [Fact]
    public void Writes_llama_imatrixs_gguf()
    {
        var folder = Directory.CreateTempSubdirectory("imatrix-cli-").FullName;
        try
        {
            var output = Path.Combine(folder, "out.gguf");
            var r = CliRunner.Run("imatrix", "--model", Stories, "--file", Story, "--ctx", "128", "--chunks", "3", "-o", output);
            r.ExitCode.Should().Be(0, r.Stderr);
            r.Stdout.Should().Contain("stored 35 entries after 3 chunks of 128 tokens");
            r.Stderr.Should().Contain("[1][2][3]");
            using var file = GgufFile.Open(output);
            using var golden = GgufFile.Open(TestPaths.Repo("Engine.Tests", "Golden", "imatrix", "stories260K.ctx128.imatrix.gguf"));
            file.Tensors.Select(t => t.Name).Should().Equal(golden.Tensors.Select(t => t.Name));
            file.Metadata.GetInteger("imatrix.chunk_count").Should().Be(3);
            file.Metadata.GetArrayOrNull<string>("imatrix.datasets").Should().Equal([Story]);
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    [Fact]
    public void Bad_requests_say_what_is_wrong()
    {
        var missing = CliRunner.Run("imatrix", "--model", Stories, "--file", "no-such-text.txt");
        missing.ExitCode.Should().Be(2);
        missing.Stderr.Should().Contain("no such file: no-such-text.txt");

        var shortText = CliRunner.Run("imatrix", "--model", Stories, "--file", Story, "-o", Path.Combine(Path.GetTempPath(), "never.gguf"));
        shortText.ExitCode.Should().Be(1);
        shortText.Stderr.Should().Contain("needs at least 1024").And.NotContain("Parameter");
        File.Exists(Path.Combine(Path.GetTempPath(), "never.gguf")).Should().BeFalse();

        var folder = CliRunner.Run("imatrix", "--model", Stories, "--file", Story, "-o", "/no/such/folder/x.gguf");
        folder.ExitCode.Should().Be(2);
        folder.Stderr.Should().Contain("no such folder");
    }
}
