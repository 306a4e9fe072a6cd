using System.Runtime.InteropServices;
using Engine.Formats;
using Engine.Formats.Safetensors;
using static Engine.Tests.Safetensors.SafetensorsBuilder;

namespace Engine.Tests.Safetensors;

/// <summary>Files the format allows, and what the reader exposes for them.</summary>
public class SafetensorsFileTests
{
    [Fact]
    public void Round_trip_values_and_shapes()
    {
        using var file = Parse(Sample().Build());
        file.Metadata.Should().Equal(new Dictionary<string, string> { ["format"] = "pt" });
        file.Tensors.Select(t => t.Name).Should().Equal("a", "b");

        var a = file.GetInfo("a");
        a.DType.Should().Be(SafetensorsDType.F32);
        a.Shape.Should().Equal(2L, 3L);
        a.ElementCount.Should().Be(6);
        a.ByteSize.Should().Be(24);
        a.FileOffset.Should().Be(8 + file.HeaderLength);

        var view = file.GetView("a");
        view.Type.Should().Be(GgmlType.F32);
        view.Shape.Should().Equal(3L, 2L); // ggml order: the contiguous dimension first
        view.RowLength.Should().Be(3);
        view.RowCount.Should().Be(2);
        MemoryMarshal.Cast<byte, float>(view.Bytes).ToArray().Should().Equal(1f, 2f, 3f, 4f, 5f, 6f);

        var b = file.GetView("b");
        b.Type.Should().Be(GgmlType.F16);
        MemoryMarshal.Cast<byte, Half>(b.Bytes).ToArray().Select(h => (float)h).Should().Equal(1f, 2f, 3f, 4f);
    }

    [Fact]
    public void Empty_tensor_with_a_zero_dimension()
    {
        var bytes = new SafetensorsBuilder()
            .AddF32("before", [1], 7)
            .Add("empty", "F32", [0, 5], [])
            .Add("empty2", "BF16", [3, 0], [])
            .AddF32("after", [1], 8)
            .Build();
        using var file = Parse(bytes);
        file.GetInfo("empty").ElementCount.Should().Be(0);
        file.GetView("empty").Shape.Should().Equal(5L, 0L);
        file.GetView("empty").Bytes.Length.Should().Be(0);
        file.GetView("empty2").RowCount.Should().Be(0);
        MemoryMarshal.Cast<byte, float>(file.GetView("after").Bytes)[0].Should().Be(8);
    }

    [Fact]
    public void Zero_rank_scalar()
    {
        using var file = Parse(new SafetensorsBuilder().AddF32("s", [], 42).Build());
        var view = file.GetView("s");
        view.Shape.Should().BeEmpty();
        view.ElementCount.Should().Be(1);
        view.ByteSize.Should().Be(4);
        MemoryMarshal.Cast<byte, float>(view.Bytes)[0].Should().Be(42);
    }

    [Fact]
    public void Padded_header_and_no_metadata()
    {
        var builder = Sample();
        builder.Metadata = null;
        using var file = Parse(Assemble(builder.HeaderJson() + "\n\t ", builder.Buffer(), padTo: 64));
        file.Metadata.Should().BeEmpty();
        file.HeaderLength.Should().Be(file.HeaderLength / 64 * 64);
        file.Tensors.Should().HaveCount(2);
    }

    [Fact]
    public void Empty_header_and_empty_buffer()
    {
        using var file = Parse(Assemble("{}", []));
        file.Tensors.Should().BeEmpty();
    }

    [Fact]
    public void Null_metadata_and_unknown_entry_fields_are_accepted()
    {
        var header = "{\"__metadata__\":null,\"t\":{\"dtype\":\"F32\",\"note\":{\"x\":[1,2]},\"shape\":[1],\"data_offsets\":[0,4]}}";
        using var file = Parse(Assemble(header, new byte[4]));
        file.Tensors.Should().ContainSingle().Which.Name.Should().Be("t");
    }

    [Fact]
    public void Tensors_are_ordered_by_offset_not_by_header_order()
    {
        var header = "{\"z\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}," +
                     "\"y\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[4,6]}," +
                     "\"x\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[2,4]}}";
        using var file = Parse(Assemble(header, [1, 2, 3, 4, 5, 6]));
        file.Tensors.Select(t => t.Name).Should().Equal("z", "x", "y");
        file.GetView("y").Bytes.ToArray().Should().Equal((byte)5, (byte)6);
    }

    [Fact]
    public void Every_dtype_is_readable_and_maps_where_ggml_has_it()
    {
        foreach (var dtype in Enum.GetValues<SafetensorsDType>())
        {
            int count = 8; // 8 elements end on a byte boundary for every bit size
            int bytes = count * dtype.BitSize() / 8;
            var data = Enumerable.Range(0, bytes).Select(i => (byte)i).ToArray();
            using var file = Parse(new SafetensorsBuilder().Add("t", dtype.ToString(), [count], data).Build());
            file.GetInfo("t").DType.Should().Be(dtype);
            file.GetBytes("t").ToArray().Should().Equal(data);
            if (dtype.ToGgml() is { } ggml) file.GetView("t").Type.Should().Be(ggml);
            else
                FluentActions.Invoking(() => file.GetView("t")).Should().Throw<ModelFormatException>()
                    .Which.Kind.Should().Be(FormatErrorKind.UnknownTensorType);
        }
    }

    [Fact]
    public void Dtype_table()
    {
        SafetensorsDType.F4.BitSize().Should().Be(4);
        SafetensorsDType.F6_E2M3.BitSize().Should().Be(6);
        SafetensorsDType.F8_E4M3.BitSize().Should().Be(8);
        SafetensorsDType.BF16.BitSize().Should().Be(16);
        SafetensorsDType.U64.BitSize().Should().Be(64);
        SafetensorsDType.BF16.ToGgml().Should().Be(GgmlType.BF16);
        SafetensorsDType.U8.ToGgml().Should().BeNull();
        SafetensorsDTypes.TryParse("F8_E5M2", out var f8).Should().BeTrue();
        f8.Should().Be(SafetensorsDType.F8_E5M2);
        SafetensorsDTypes.TryParse("bf16", out _).Should().BeFalse();
        SafetensorsDTypes.TryParse("12", out _).Should().BeFalse();
    }

    [Fact]
    public void Missing_tensor_is_a_MissingKey_error()
    {
        using var file = Parse(Sample().Build());
        file.Contains("nope").Should().BeFalse();
        file.TryGetView("nope", out var none).Should().BeFalse();
        none.Should().BeNull();
        var e = FluentActions.Invoking(() => file.GetView("nope")).Should().Throw<ModelFormatException>().Which;
        e.Kind.Should().Be(FormatErrorKind.MissingKey);
        e.Field.Should().Be("nope");
    }

    [Fact]
    public void Open_maps_a_file_and_errors_name_it()
    {
        using var dir = new TempDir();
        string good = dir.Write("good.safetensors", Sample().Build());
        using (var file = SafetensorsFile.Open(good))
        {
            file.FilePath.Should().Be(good);
            MemoryMarshal.Cast<byte, float>(file.GetView("a").Bytes)[5].Should().Be(6);
        }

        string bad = dir.Write("bad.safetensors", Sample().Build()[..^1]);
        var e = FluentActions.Invoking(() => SafetensorsFile.Open(bad)).Should().Throw<ModelFormatException>().Which;
        e.FilePath.Should().Be(bad);
        e.Message.Should().StartWith(bad);

        FluentActions.Invoking(() => SafetensorsFile.Open(Path.Combine(dir.Path, "absent.safetensors")))
            .Should().Throw<ModelFormatException>().Which.Kind.Should().Be(FormatErrorKind.Io);
        FluentActions.Invoking(() => SafetensorsFile.Open(dir.Write("empty.safetensors", [])))
            .Should().Throw<ModelFormatException>().Which.Kind.Should().Be(FormatErrorKind.FileTooShort);
    }
}
