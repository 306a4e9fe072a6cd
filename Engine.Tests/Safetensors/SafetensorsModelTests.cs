using System.Runtime.InteropServices;
using System.Text.Json;
using Engine.Formats;
using Engine.Formats.Safetensors;

namespace Engine.Tests.Safetensors;

/// <summary>Model folders: single files, sharded sets and their index (checklist S7, S8), in temp folders.</summary>
public class SafetensorsModelTests
{
    const string Shard1 = "model-00001-of-00002.safetensors";
    const string Shard2 = "model-00002-of-00002.safetensors";

    /// <summary>A valid two-shard model: "a" and "b" in shard 1, "c" in shard 2.</summary>
    static TempDir ShardedFolder(Dictionary<string, string>? weightMap = null, string? indexText = null)
    {
        var dir = new TempDir();
        dir.Write(Shard1, new SafetensorsBuilder().AddF32("a", [2], 1, 2).AddF32("b", [1], 3).Build());
        dir.Write(Shard2, new SafetensorsBuilder().AddF32("c", [1], 4).Build());
        weightMap ??= new() { ["a"] = Shard1, ["b"] = Shard1, ["c"] = Shard2 };
        dir.Write(SafetensorsIndex.FileName,
            indexText ?? JsonSerializer.Serialize(new { metadata = new { total_size = 16 }, weight_map = weightMap }));
        return dir;
    }

    static ModelFormatException Reject(string path) =>
        FluentActions.Invoking(() => SafetensorsModel.Open(path)).Should().Throw<ModelFormatException>().Which;

    static float First(TensorView view) => MemoryMarshal.Cast<byte, float>(view.Bytes)[0];

    [Fact]
    public void Sharded_folder_gives_one_lookup_over_all_shards()
    {
        using var dir = ShardedFolder();
        using var model = SafetensorsModel.Open(dir.Path);
        model.Shards.Should().HaveCount(2);
        model.Index.Should().NotBeNull();
        model.Tensors.Select(t => t.Name).Should().Equal("a", "b", "c");
        First(model.GetView("a")).Should().Be(1);
        First(model.GetView("b")).Should().Be(3);
        First(model.GetView("c")).Should().Be(4);
        model.ShardOf("c").FilePath.Should().EndWith(Shard2);
        model.TryGetView("zz", out _).Should().BeFalse();
        FluentActions.Invoking(() => model.GetView("zz")).Should().Throw<ModelFormatException>()
            .Which.Kind.Should().Be(FormatErrorKind.MissingKey);
    }

    [Fact]
    public void The_index_file_itself_can_be_opened()
    {
        using var dir = ShardedFolder();
        using var model = SafetensorsModel.Open(Path.Combine(dir.Path, SafetensorsIndex.FileName));
        model.Tensors.Should().HaveCount(3);
    }

    [Fact]
    public void Single_file_folders()
    {
        using var dir = new TempDir();
        dir.Write("model.safetensors", SafetensorsBuilder.Sample().Build());
        using (var model = SafetensorsModel.Open(dir.Path))
        {
            model.Index.Should().BeNull();
            model.Tensors.Should().HaveCount(2);
        }
        using (var model = SafetensorsModel.Open(Path.Combine(dir.Path, "model.safetensors")))
            model.Contains("b").Should().BeTrue();

        using var other = new TempDir();
        other.Write("weights.safetensors", SafetensorsBuilder.Sample().Build());
        using (var model = SafetensorsModel.Open(other.Path)) model.Contains("a").Should().BeTrue();
        other.Write("more.safetensors", SafetensorsBuilder.Sample().Build());
        Reject(other.Path).Kind.Should().Be(FormatErrorKind.Io); // two candidates, no index: ambiguous
    }

    [Fact]
    public void Missing_or_empty_folder_is_an_Io_error()
    {
        using var dir = new TempDir();
        Reject(dir.Path).Kind.Should().Be(FormatErrorKind.Io);
        Reject(Path.Combine(dir.Path, "nothing-here")).Kind.Should().Be(FormatErrorKind.Io);
    }

    [Theory]
    [InlineData("../model-00001-of-00002.safetensors")]
    [InlineData("..\\model-00001-of-00002.safetensors")]
    [InlineData("sub/model.safetensors")]
    [InlineData("/etc/passwd.safetensors")]
    [InlineData("C:\\x.safetensors")]
    [InlineData("C:x.safetensors")]
    [InlineData("model.bin")]
    [InlineData("model.safetensors.exe")]
    [InlineData("model\0.safetensors")]
    [InlineData("..safetensors")]
    [InlineData("")]
    [InlineData("..")]
    public void S7_unsafe_shard_names(string shard)
    {
        using var dir = ShardedFolder(new() { ["a"] = Shard1, ["b"] = Shard1, ["c"] = shard });
        var e = Reject(dir.Path);
        e.Kind.Should().Be(FormatErrorKind.UnsafePath);
        e.Field.Should().Be("c");
        e.FilePath.Should().EndWith(SafetensorsIndex.FileName);
    }

    [Fact]
    public void S8_index_places_a_tensor_in_a_shard_that_lacks_it()
    {
        using var dir = ShardedFolder(new() { ["a"] = Shard1, ["b"] = Shard1, ["c"] = Shard2, ["d"] = Shard2 });
        var e = Reject(dir.Path);
        e.Kind.Should().Be(FormatErrorKind.ShardMismatch);
        e.Field.Should().Be("d");
    }

    [Fact]
    public void S8_tensor_present_in_two_shards()
    {
        using var dir = ShardedFolder();
        dir.Write(Shard2, new SafetensorsBuilder().AddF32("b", [1], 9).AddF32("c", [1], 4).Build());
        var e = Reject(dir.Path);
        e.Kind.Should().Be(FormatErrorKind.ShardMismatch);
        e.Field.Should().Be("b");
        e.Message.Should().Contain(Shard1).And.Contain(Shard2);
    }

    [Fact]
    public void S8_shard_holds_a_tensor_the_index_does_not_list()
    {
        using var dir = ShardedFolder(new() { ["a"] = Shard1, ["c"] = Shard2 });
        var e = Reject(dir.Path);
        e.Kind.Should().Be(FormatErrorKind.ShardMismatch);
        e.Field.Should().Be("b");
    }

    [Fact]
    public void S8_index_names_the_wrong_shard()
    {
        using var dir = ShardedFolder(new() { ["a"] = Shard1, ["b"] = Shard2, ["c"] = Shard2 });
        var e = Reject(dir.Path);
        e.Kind.Should().Be(FormatErrorKind.ShardMismatch);
        e.Field.Should().Be("b");
    }

    [Fact]
    public void S8_listed_shard_file_does_not_exist()
    {
        using var dir = ShardedFolder(new() { ["a"] = Shard1, ["b"] = Shard1, ["c"] = "model-00003.safetensors" });
        Reject(dir.Path).Kind.Should().Be(FormatErrorKind.ShardMismatch);
    }

    [Fact]
    public void Corrupt_shard_is_reported_with_its_path()
    {
        using var dir = ShardedFolder();
        dir.Write(Shard2, new SafetensorsBuilder().AddF32("c", [1], 4).Build()[..^2]);
        var e = Reject(dir.Path);
        e.Kind.Should().Be(FormatErrorKind.TensorOutOfBounds);
        e.FilePath.Should().EndWith(Shard2);
    }

    [Theory]
    [InlineData("{\"weight_map\":{\"a\":\"x.safetensors\",\"a\":\"y.safetensors\"}}", FormatErrorKind.Duplicate)]
    [InlineData("{\"weight_map\":{},\"weight_map\":{}}", FormatErrorKind.Duplicate)]
    [InlineData("{\"metadata\":{}}", FormatErrorKind.MissingKey)]
    [InlineData("{\"weight_map\":[]}", FormatErrorKind.InvalidHeader)]
    [InlineData("{\"weight_map\":{\"a\":1}}", FormatErrorKind.InvalidHeader)]
    [InlineData("{\"weight_map\":{\"a\":\"x.safetensors\"}", FormatErrorKind.InvalidHeader)]
    [InlineData("[]", FormatErrorKind.InvalidHeader)]
    [InlineData("", FormatErrorKind.FileTooShort)]
    [InlineData("{\"weight_map\":{}} {}", FormatErrorKind.InvalidHeader)]
    public void Malformed_index(string text, FormatErrorKind kind)
    {
        using var dir = ShardedFolder(indexText: text);
        Reject(dir.Path).Kind.Should().Be(kind);
    }
}
