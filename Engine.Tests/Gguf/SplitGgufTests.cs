using System.Security.Cryptography;
using System.Text.Json;
using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Gguf;

/// <summary>Split GGUF models (llama.cpp's gguf-split): opened by the first part, the other parts found by llama.cpp's
/// naming rule and checked, the model's logits bit for bit those of the unsplit file; every broken split is a typed
/// <see cref="ModelFormatException"/> naming the part; inspect and estimate see the whole model.</summary>
public sealed class SplitGgufTests : IDisposable
{
    static readonly string Stories = TestPaths.Repo("models", "stories260K.gguf");
    readonly string _folder = Directory.CreateTempSubdirectory("engine-split-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>stories260K's 48 tensors in 3 parts of at most 20.</summary>
    List<string> SplitStories(string prefix = "stories") => GgufSplitter.SplitTo(Stories, 20, _folder, prefix);

    static float[] Logits(string path, int[] tokens)
    {
        using var model = LoadedModel.Open(path, new ModelOptions { Threads = 2 });
        using var cache = model.Model.CreateCache(tokens.Length);
        var logits = new float[tokens.Length * model.Config.VocabSize];
        model.Model.Forward(tokens, 0, cache, logits);
        return logits;
    }

    static void ShouldBeBitIdentical(float[] actual, float[] expected)
    {
        actual.Length.Should().Be(expected.Length);
        for (int i = 0; i < actual.Length; i++)
            BitConverter.SingleToInt32Bits(actual[i]).Should().Be(BitConverter.SingleToInt32Bits(expected[i]), $"logit {i}");
    }

    /// <summary>The splitter writes what llama.cpp writes: these are the SHA-256s of
    /// `llama-gguf-split --split --split-max-tensors 8 [--no-tensor-first-split] fx-llama-Q4_K_M.gguf OUT` (llama.cpp
    /// de3ff81, the oracle's commit; 21 tensors of F32, Q4_K and Q6_K in parts of 8, 8 and 5, or a metadata-only part
    /// then those), recorded on 2026-12-06.</summary>
    [SharedFact]
    public void The_splitter_writes_llama_gguf_splits_bytes()
    {
        string[] llamaCpp =
        [
            "689b3f87cacb038a44c53da2c1438c98d90d427d479dde060a0afeb109c3c5ee",
            "e8272d1762a046d3cd80758b142eaeacb4aeed3b40bf8e7643d9a40418f3af7f",
            "f01a354c185183b6c8fa98049ca0d1cd34aad1fd163a859f9dbf9e98d84178c3",
        ];
        string[] llamaCppNoTensorFirstSplit =
        [
            "6abf79c0265d1b00c64a1cb20226b839af86654a1556050d38d2b1ba384c79a4",
            "8c2656eb1be66f5c5629470a2d3fb310f565a8867bca336f1f14aae5e96dc3e3",
            "d3917c02995f22b957a1e50abb51f10fc5395bf8aaad9ca748fb07fa13750edc",
            "5dfc9553946ead92c4b719c2e29a80a2396ae40a308bc95f67ee652ea4d54be5",
        ];
        using var source = GgufFile.Open(TestPaths.Shared("fixtures", "fx-llama-Q4_K_M.gguf")!);
        static string Hash(byte[] part) => System.Convert.ToHexStringLower(SHA256.HashData(part));
        GgufSplitter.Split(source, 8).Select(Hash).Should().Equal(llamaCpp);
        GgufSplitter.Split(source, 8, noTensorsInFirst: true).Select(Hash).Should().Equal(llamaCppNoTensorFirstSplit);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // the first part metadata only: the output head lies in another part
    public void A_split_model_gives_the_logits_of_the_whole_file_bit_for_bit(bool noTensorsInFirst)
    {
        var parts = GgufSplitter.SplitTo(Stories, 20, _folder, "stories", noTensorsInFirst);
        parts.Should().HaveCount(noTensorsInFirst ? 4 : 3);
        int[] tokens = [1, 403, 407, 261, 378, 22, 15, 61];
        ShouldBeBitIdentical(Logits(parts[0], tokens), Logits(Stories, tokens));

        using var files = GgufModelFiles.Open(parts[0]);
        files.Parts.Select(p => p.Path).Should().Equal(parts);
        files.Tensors.Count().Should().Be(48);
        // The config must find output.weight in whichever part holds it (not take the model for a tied one).
        files.Parts[0].TryGetTensor("output.weight", out _).Should().Be(!noTensorsInFirst);
        using var whole = GgufFile.Open(Stories);
        GgufModelConfig.Read(files).Should().Be(GgufModelConfig.Read(whole));
    }

    [SharedFact]
    public void A_split_quantized_fixture_gives_the_logits_of_the_whole_file_bit_for_bit()
    {
        string source = TestPaths.Shared("fixtures", "fx-llama-Q4_K_M.gguf")!;
        var parts = GgufSplitter.SplitTo(source, 8, _folder, "fx-llama-Q4_K_M");
        var golden = GoldenCase.LoadFixture(TestPaths.Shared("fixtures")!, "fx-llama-Q4_K_M");
        ShouldBeBitIdentical(Logits(parts[0], golden.Tokens), Logits(source, golden.Tokens));
    }

    [Fact]
    public void The_size_on_disk_counts_every_part_for_bench_and_the_server()
    {
        var parts = SplitStories();
        long all = parts.Sum(p => new FileInfo(p).Length);
        all.Should().BeGreaterThan(new FileInfo(parts[0]).Length);
        using (var model = LoadedModel.Open(parts[0], new ModelOptions { Threads = 1 }))
            model.FileBytes.Should().Be(all);
        Engine.Server.ModelCatalog.DiskBytes(parts[0]).Should().Be(all, "the server's memory check and /api/tags see the whole model");
        Engine.Server.ModelCatalog.DiskBytes(Stories).Should().Be(new FileInfo(Stories).Length);
        var r = CliRunner.Run("bench", "--model", parts[0], "-p", "4", "-n", "2", "-r", "1", "--threads", "1", "--json");
        r.ExitCode.Should().Be(0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        doc.RootElement.GetProperty("file_bytes").GetInt64().Should().Be(all);
    }

    [Fact]
    public void A_single_file_and_a_split_of_one_open_as_one_part()
    {
        using (var whole = GgufModelFiles.Open(Stories)) whole.Parts.Should().HaveCount(1);
        var one = GgufSplitter.SplitTo(Stories, 100, _folder, "one");
        one.Should().Equal([Path.Combine(_folder, "one-00001-of-00001.gguf")]);
        using var files = GgufModelFiles.Open(one[0]);
        files.Parts.Should().HaveCount(1);
        files.Tensors.Count().Should().Be(48);
    }

    static ModelFormatException OpenFails(string path) =>
        FluentActions.Invoking(() => GgufModelFiles.Open(path)).Should().Throw<ModelFormatException>().Which;

    [Fact]
    public void A_missing_part_names_the_file_expected()
    {
        var parts = SplitStories();
        File.Delete(parts[1]);
        var e = OpenFails(parts[0]);
        e.Kind.Should().Be(FormatErrorKind.Io);
        e.Message.Should().Contain("part 2 of 3").And.Contain(parts[1]);
        // The loader says the same, not a missing tensor.
        FluentActions.Invoking(() => LoadedModel.Open(parts[0])).Should().Throw<ModelFormatException>().WithMessage($"*{parts[1]}*");
    }

    [Fact]
    public void A_part_of_another_split_is_refused()
    {
        var parts = SplitStories();
        var other = GgufSplitter.SplitTo(Stories, 30, Directory.CreateDirectory(Path.Combine(_folder, "two")).FullName, "stories");
        File.Copy(other[1], parts[1], overwrite: true); // part 2 of a 2-part split where part 2 of 3 belongs
        var e = OpenFails(parts[0]);
        e.Kind.Should().Be(FormatErrorKind.ShardMismatch);
        e.Field.Should().Be("split.count");
        e.FilePath.Should().Be(parts[1]);
    }

    [Fact]
    public void A_part_in_the_wrong_place_is_refused()
    {
        var parts = SplitStories();
        File.Copy(parts[2], parts[1], overwrite: true);
        var e = OpenFails(parts[0]);
        e.Kind.Should().Be(FormatErrorKind.ShardMismatch);
        e.Field.Should().Be("split.no");
        e.Message.Should().Contain("part 3 where part 2 belongs");
    }

    /// <summary>Rewrites part `index` of a 3-part split of stories with changed keys or tensors.</summary>
    static void Rewrite(List<string> parts, int index, Action<GgufWriter, GgufFile> build)
    {
        byte[] bytes;
        using (var part = GgufFile.Open(parts[index]))
        {
            var writer = new GgufWriter();
            build(writer, part);
            bytes = writer.ToArray();
        }
        File.WriteAllBytes(parts[index], bytes);
    }

    static void CopyTensors(GgufWriter writer, GgufFile from, IEnumerable<GgufTensorInfo>? only = null)
    {
        foreach (var t in only ?? from.Tensors) writer.AddTensor(t.Name, t.Type, [.. t.Shape], from.GetTensor(t.Name).Bytes.ToArray());
    }

    [Fact]
    public void A_tensor_in_two_parts_is_refused()
    {
        var parts = SplitStories();
        using var first = GgufFile.Open(parts[0]);
        var shared = first.Tensors[0];
        var sharedBytes = first.GetTensor(shared.Name).Bytes.ToArray();
        Rewrite(parts, 2, (w, part) =>
        {
            foreach (var (key, value) in part.MetadataList) w.AddMetadata(key, value);
            CopyTensors(w, part);
            w.AddTensor(shared.Name, shared.Type, [.. shared.Shape], sharedBytes);
        });
        var e = OpenFails(parts[0]);
        e.Kind.Should().Be(FormatErrorKind.Duplicate);
        e.Field.Should().Be(shared.Name);
        e.FilePath.Should().Be(parts[2]);
    }

    [Fact]
    public void Parts_holding_fewer_tensors_than_the_split_declares_are_refused()
    {
        var parts = SplitStories();
        Rewrite(parts, 2, (w, part) =>
        {
            foreach (var (key, value) in part.MetadataList) w.AddMetadata(key, value);
            CopyTensors(w, part, part.Tensors.Skip(1));
        });
        var e = OpenFails(parts[0]);
        e.Kind.Should().Be(FormatErrorKind.ShardMismatch);
        e.Field.Should().Be("split.tensors.count");
        e.Expected.Should().Be("48");
        e.Actual.Should().Be("47");
    }

    [Fact]
    public void A_part_without_its_index_is_refused()
    {
        var parts = SplitStories();
        Rewrite(parts, 1, (w, part) =>
        {
            foreach (var (key, value) in part.MetadataList)
                if (key != "split.no") w.AddMetadata(key, value);
            CopyTensors(w, part);
        });
        var e = OpenFails(parts[0]);
        e.Kind.Should().Be(FormatErrorKind.MissingKey);
        e.Field.Should().Be("split.no");
        e.FilePath.Should().Be(parts[1]);
    }

    [Fact]
    public void A_split_count_of_the_wrong_type_or_size_is_refused()
    {
        var parts = SplitStories();
        Rewrite(parts, 0, (w, part) =>
        {
            foreach (var (key, value) in part.MetadataList) w.AddMetadata(key, key == "split.count" ? new GgufValue(GgufValueType.String, "3") : value);
            CopyTensors(w, part);
        });
        OpenFails(parts[0]).Kind.Should().Be(FormatErrorKind.WrongMetadataType);

        // A count no gguf-split writes is refused before any part's name is made.
        Rewrite(parts, 0, (w, part) =>
        {
            foreach (var (key, value) in part.MetadataList) w.AddMetadata(key, key == "split.count" ? new GgufValue(GgufValueType.UInt32, 2_000_000_000u) : value);
            CopyTensors(w, part);
        });
        var e = OpenFails(parts[0]);
        e.Kind.Should().Be(FormatErrorKind.InvalidConfig);
        e.Field.Should().Be("split.count");
    }

    [Fact]
    public void A_later_part_or_a_renamed_first_part_is_refused_with_what_to_open()
    {
        var parts = SplitStories();
        var e = OpenFails(parts[1]);
        e.Kind.Should().Be(FormatErrorKind.InvalidConfig);
        e.Message.Should().Contain("part 2 of 3").And.Contain("first part");

        var renamed = Path.Combine(_folder, "stories.gguf");
        File.Move(parts[0], renamed);
        e = OpenFails(renamed);
        e.Kind.Should().Be(FormatErrorKind.InvalidConfig);
        e.Message.Should().Contain("-00001-of-00003.gguf");
    }

    [Fact]
    public void Inspect_and_estimate_see_the_whole_split_model()
    {
        var parts = SplitStories();
        using var whole = JsonDocument.Parse(Run("inspect", Stories, "--json"));
        using var split = JsonDocument.Parse(Run("inspect", parts[0], "--json"));
        split.RootElement.GetProperty("tensors").GetArrayLength().Should().Be(48);
        split.RootElement.GetProperty("hyperparameters").GetRawText().Should().Be(whole.RootElement.GetProperty("hyperparameters").GetRawText());
        split.RootElement.GetProperty("file_size").GetInt64().Should().Be(parts.Sum(p => new FileInfo(p).Length));
        Run("inspect", parts[0]).Should().Contain("split:").And.Contain(Path.GetFileName(parts[2]));
        Run("inspect", parts[1]).Should().Contain("part 2 of 3");

        string[] estimate = ["--ctx", "256", "--parallel", "1", "--bandwidth", "10", "--json"];
        using var wholeEstimate = JsonDocument.Parse(Run(["estimate", "--model", Stories, .. estimate]));
        using var splitEstimate = JsonDocument.Parse(Run(["estimate", "--model", parts[0], .. estimate]));
        foreach (var key in new[] { "weights_bytes", "total_bytes", "weight_bytes_per_token" })
            splitEstimate.RootElement.GetProperty(key).GetInt64().Should().Be(wholeEstimate.RootElement.GetProperty(key).GetInt64(), key);

        File.Delete(parts[2]);
        foreach (var command in new[] { new[] { "inspect", parts[0] }, new[] { "estimate", "--model", parts[0] }, new[] { "run", "Once", "--model", parts[0], "-n", "1" } })
        {
            var r = CliRunner.Run(command);
            r.ExitCode.Should().NotBe(0, command[0]);
            r.Stderr.Should().Contain(parts[2], command[0]);
        }
    }

    static string Run(params string[] args)
    {
        var r = CliRunner.Run(args);
        r.ExitCode.Should().Be(0, r.Stderr);
        return r.Stdout;
    }
}
