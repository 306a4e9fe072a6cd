using System.Runtime.InteropServices;
using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Tests.Support;

namespace Engine.Tests.Research;

/// <summary>The importance matrix against llama-imatrix's own files: Engine.Tests/Golden/imatrix holds what
/// llama-imatrix (built from the oracle's llama.cpp commit) wrote for Golden/perplexity/story.txt at a context of 128
/// (see Golden/PROVENANCE.md). The engine's file must read back with the same keys, types, tensor names, order, types
/// and shapes, the same token counts, and the same sums.</summary>
public class ImportanceMatrixTests
{
    static readonly string Story = TestPaths.Repo("Engine.Tests", "Golden", "perplexity", "story.txt");
    // The dataset name llama-imatrix stored: the -f path as given on its command line.
    const string Dataset = "Engine.Tests/Golden/perplexity/story.txt";

    static string Golden(string name) => TestPaths.Repo("Engine.Tests", "Golden", "imatrix", name + ".ctx128.imatrix.gguf");
    static string ModelPath(string name) => name == "stories260K"
        ? TestPaths.Repo("models", "stories260K.gguf")
        : TestPaths.Repo("Engine.Tests", "Fixtures", name + ".gguf");

    static async Task<string> Compute(string name, string folder)
    {
        using var model = Model.Load(ModelPath(name));
        var matrix = await model.ImportanceMatrixAsync(File.ReadAllText(Story).TrimEnd('\n'),
            new ImportanceMatrixOptions { ContextLength = 128, Datasets = [Dataset] });
        var path = Path.Combine(folder, name + ".imatrix.gguf");
        matrix.Save(path);
        return path;
    }

    // Dense F32 models: the engine's activations equal llama.cpp's to ~1e-6 (measured: at most 1.6e-6 relative).
    // The MoE fixture has F16 weights, where llama.cpp rounds activations to F16 before each product: its sums differ
    // by up to ~1.1e-3 relative (measured), while the routing, and so every expert's count, is the same.
    [Theory]
    [InlineData("stories260K", 1e-5)]
    [InlineData("fx-llama-F32", 1e-5)]
    [InlineData("fx-qwen3moe-F16", 5e-3)]
    public async Task The_file_equals_llama_imatrixs(string name, double tolerance)
    {
        var folder = Directory.CreateTempSubdirectory("imatrix-").FullName;
        try
        {
            var path = await Compute(name, folder);
            Directory.GetFiles(folder).Should().Equal([path], "the file is written whole, under a temporary name first");
            using var ours = GgufFile.Open(path);
            using var theirs = GgufFile.Open(Golden(name));

            ours.MetadataList.Select(kv => (kv.Key, kv.Value.Type, kv.Value.ElementType))
                .Should().Equal(theirs.MetadataList.Select(kv => (kv.Key, kv.Value.Type, kv.Value.ElementType)));
            ours.Metadata.GetString("general.type").Should().Be("imatrix");
            ours.Metadata.GetArrayOrNull<string>("imatrix.datasets").Should().Equal(theirs.Metadata.GetArrayOrNull<string>("imatrix.datasets"));
            ours.Metadata.GetInteger("imatrix.chunk_count").Should().Be(theirs.Metadata.GetInteger("imatrix.chunk_count")).And.Be(4);
            ours.Metadata.GetInteger("imatrix.chunk_size").Should().Be(theirs.Metadata.GetInteger("imatrix.chunk_size")).And.Be(128);

            ours.Tensors.Select(t => (t.Name, t.Type, string.Join('x', t.Shape)))
                .Should().Equal(theirs.Tensors.Select(t => (t.Name, t.Type, string.Join('x', t.Shape))), "llama.cpp's names, order, types and shapes");
            ours.Tensors.Should().OnlyContain(t => t.Type == GgmlType.F32);
            foreach (var tensor in theirs.Tensors)
            {
                var expected = Floats(theirs.GetTensor(tensor.Name));
                var actual = Floats(ours.GetTensor(tensor.Name));
                if (tensor.Name.EndsWith(".counts", StringComparison.Ordinal))
                    actual.Should().Equal(expected, $"{tensor.Name}: the same tokens went into each matrix");
                else
                    for (int i = 0; i < expected.Length; i++)
                        ((double)actual[i]).Should().BeApproximately(expected[i], Math.Abs(expected[i]) * tolerance + 1e-6, $"{tensor.Name}[{i}]");
            }
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    static float[] Floats(TensorView view) => MemoryMarshal.Cast<byte, float>(view.Bytes).ToArray();

    [Fact]
    public async Task Entries_hold_the_sums_and_counts_the_file_stores()
    {
        using var model = Model.Load(ModelPath("fx-qwen3moe-F16"));
        var matrix = await model.ImportanceMatrixAsync(File.ReadAllText(Story).TrimEnd('\n'),
            new ImportanceMatrixOptions { ContextLength = 128, MaxChunks = 2 });
        matrix.ChunkCount.Should().Be(2);
        matrix.Datasets.Should().BeEmpty();
        matrix.Entries.Select(e => e.Name).Should().BeInAscendingOrder(StringComparer.Ordinal);
        var router = matrix.Entries.Single(e => e.Name == "blk.0.ffn_gate_inp.weight");
        router.Counts.Should().Equal([256L], "every token of two chunks of 128 goes through the router");
        var down = matrix.Entries.Single(e => e.Name == "blk.1.ffn_down_exps.weight");
        down.Matrices.Should().Be(8);
        down.Columns.Should().Be(256);
        down.Counts.Sum().Should().Be(2 * 256, "2 experts per token");
        down.SquaredSums.Should().HaveCount(8 * 256);
        for (int e = 0; e < 8; e++)
            if (down.Counts[e] == 0) down.SquaredSums.Skip(e * 256).Take(256).Should().OnlyContain(v => v == 0);
    }

    [Fact]
    public async Task Bad_requests_are_refused_with_what_is_wrong()
    {
        using var model = Model.Load(ModelPath("stories260K"), new ModelLoadOptions { ContextLength = 256 });
        var shortText = () => model.ImportanceMatrixAsync("Once upon a time", new ImportanceMatrixOptions { ContextLength = 128 });
        (await shortText.Should().ThrowAsync<ArgumentException>()).Which.Message.Should().Contain("needs at least 256");
        var wide = () => model.ImportanceMatrixAsync(File.ReadAllText(Story), new ImportanceMatrixOptions { ContextLength = 512 });
        (await wide.Should().ThrowAsync<ArgumentOutOfRangeException>()).Which.Message.Should().Contain("more than the model's context of 256");

        using var shared = Model.Load(ModelPath("fx-qwen2moe-Q8_0"));
        var unsupported = () => shared.ImportanceMatrixAsync(File.ReadAllText(Story), new ImportanceMatrixOptions { ContextLength = 128 });
        (await unsupported.Should().ThrowAsync<NotSupportedException>()).Which.Message.Should().Contain("shared expert");
    }
}
