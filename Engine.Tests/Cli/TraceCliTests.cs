using System.IO.Compression;
using Engine.Formats.Safetensors;
using Engine.Tests.Support;

namespace Engine.Tests.Cli;

/// <summary>`engine trace`: the arrays it saves are the library's RunWithCacheAsync values, under the names and shapes
/// the issue promises (NAME.LAYER, [tokens, width] or [heads, tokens, tokens]).</summary>
public class TraceCliTests
{
    static readonly string Stories = TestPaths.Repo("models", "stories260K.gguf");

    [Fact]
    public async Task Trace_saves_the_hooked_values_as_npz_and_safetensors()
    {
        var dir = Directory.CreateTempSubdirectory("trace-").FullName;
        try
        {
            var npz = Path.Combine(dir, "run.npz");
            var r = CliRunner.Run("trace", "--model", Stories, "--text", "Once upon a time", "--hooks", "l_out,kq_soft_max.1", "--out", npz);
            r.ExitCode.Should().Be(0, r.Stderr);
            r.Stdout.Should().Contain("l_out.4 [").And.Contain("kq_soft_max.1 [8, ");
            using (var zip = ZipFile.OpenRead(npz))
                zip.Entries.Select(e => e.Name).Should().Contain(["tokens.npy", "logits.npy", "l_out.0.npy", "l_out.4.npy", "kq_soft_max.1.npy"]);

            var st = Path.Combine(dir, "run.safetensors");
            CliRunner.Run("trace", "--model", Stories, "--text", "Once upon a time", "--hooks", "blocks.2.hook_resid_post", "--out", st).ExitCode.Should().Be(0);
            using var model = Model.Load(Stories);
            var tokens = model.Tokenize("Once upon a time", parseSpecialTokens: true);
            var expected = (await model.RunWithCacheAsync([tokens], "l_out.2"))[0]["l_out.2"];
            using var file = SafetensorsFile.Open(st);
            file.Tensors.Single(t => t.Name == "l_out.2").Shape.Should().Equal(tokens.Count, model.Info.EmbeddingLength);
            System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(file.GetBytes("l_out.2")).ToArray().Should().Equal(expected.Values);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Theory]
    [InlineData("--hooks", "l_outt", "--out", "x.npz")]
    [InlineData("--hooks", "l_out.9", "--out", "x.npz")]
    [InlineData("--hooks", "l_out", "--out", "x.txt")]
    [InlineData("--out", "x.npz")]
    public void Bad_requests_say_what_is_wrong_and_write_nothing(params string[] options)
    {
        var dir = Directory.CreateTempSubdirectory("trace-").FullName;
        try
        {
            var args = new[] { "trace", "--model", Stories, "--text", "Hi" }.Concat(options.Select(o => o.StartsWith("x.") ? Path.Combine(dir, o) : o)).ToArray();
            var r = CliRunner.Run(args);
            r.ExitCode.Should().NotBe(0);
            r.Stderr.Should().NotBeEmpty();
            Directory.GetFiles(dir).Should().BeEmpty();
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
