using Engine.Formats;
using Engine.Formats.Gguf;

namespace Engine.Tests.Gguf;

/// <summary>The view contract the readers hand out: slices must agree with their bytes, shapes cannot be changed
/// behind the reader's back, and a view outliving its file throws instead of reading unmapped memory.</summary>
public class TensorViewTests
{
    const int Experts = 3;

    /// <summary>A stacked Q8_0 tensor [32, 2, 3]: three experts of two rows of one block (34 bytes) each.</summary>
    static byte[] StackedFile(out byte[] data)
    {
        data = new byte[34 * 2 * Experts];
        new Random(5).NextBytes(data);
        return new GgufWriter().AddMetadata(GgufKeys.Architecture, "llama")
            .AddTensor("exps", GgmlType.Q8_0, [32, 2, Experts], data).ToArray();
    }

    [Fact]
    public void A_slice_is_the_byte_range_of_its_rows()
    {
        using var file = GgufFile.Parse(StackedFile(out var data));
        var stacked = file.GetTensor("exps");
        for (int e = 0; e < Experts; e++)
        {
            var slice = stacked.Slice($"exps[{e}]", [32, 2], e * 68, 68);
            slice.Shape.Should().Equal(32, 2);
            slice.RowCount.Should().Be(2);
            slice.Type.Should().Be(GgmlType.Q8_0);
            slice.Bytes.ToArray().Should().Equal(data.AsSpan(e * 68, 68).ToArray());
        }
    }

    [Theory]
    [InlineData(new long[] { 32, 2 }, 0, 34)]   // two rows claimed, one row of bytes: a kernel would read past it
    [InlineData(new long[] { 32, 1 }, 0, 68)]   // more bytes than the shape holds
    [InlineData(new long[] { 16, 4 }, 0, 68)]   // a row of half a Q8_0 block
    [InlineData(new long[] { 32, -2 }, 0, 68)]  // a negative dimension
    public void A_slice_whose_shape_and_bytes_disagree_is_refused(long[] shape, long offset, long size)
    {
        using var file = GgufFile.Parse(StackedFile(out _));
        var stacked = file.GetTensor("exps");
        FluentActions.Invoking(() => stacked.Slice("bad", shape, offset, size)).Should().Throw<ArgumentException>()
            .Which.Should().NotBeOfType<ArgumentOutOfRangeException>();
    }

    [Theory]
    [InlineData(-1, 68)]
    [InlineData(170, 68)] // starts inside, ends past the 204 bytes
    [InlineData(205, 0)]
    public void A_slice_outside_the_tensor_is_refused(long offset, long size)
    {
        using var file = GgufFile.Parse(StackedFile(out _));
        var stacked = file.GetTensor("exps");
        FluentActions.Invoking(() => stacked.Slice("bad", [32, 2], offset, size)).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void Shapes_are_read_only_copies()
    {
        using var file = GgufFile.Parse(StackedFile(out _));
        file.Tensors[0].Shape.Should().NotBeAssignableTo<long[]>();
        var view = file.GetTensor("exps");
        view.Shape.Should().NotBeAssignableTo<long[]>();
        FluentActions.Invoking(() => ((IList<long>)view.Shape)[1] = 1000).Should().Throw<NotSupportedException>();
        view.Shape.Should().Equal(32, 2, Experts);
    }

    [Fact]
    public unsafe void A_view_of_an_in_memory_file_throws_once_the_file_is_disposed()
    {
        var file = GgufFile.Parse(StackedFile(out _));
        var view = file.GetTensor("exps");
        file.Dispose();
        FluentActions.Invoking(() => view.Bytes.Length).Should().Throw<ObjectDisposedException>();
        FluentActions.Invoking(() => view.ReadBytes(0, new byte[4])).Should().Throw<ObjectDisposedException>();
        FluentActions.Invoking(() => (long)view.Pointer).Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public unsafe void A_view_of_a_mapped_file_throws_once_the_file_is_disposed()
    {
        string path = Path.Combine(Path.GetTempPath(), $"tensorview-{Guid.NewGuid():N}.gguf");
        try
        {
            File.WriteAllBytes(path, StackedFile(out var data));
            var file = GgufFile.Open(path);
            var view = file.GetTensor("exps");
            var head = new byte[4];
            view.ReadBytes(0, head);
            head.Should().Equal(data[..4]);
            file.Dispose();
            FluentActions.Invoking(() => view.Bytes.Length).Should().Throw<ObjectDisposedException>();
            FluentActions.Invoking(() => view.ReadBytes(0, head)).Should().Throw<ObjectDisposedException>();
            FluentActions.Invoking(() => (long)view.Pointer).Should().Throw<ObjectDisposedException>();
        }
        finally { File.Delete(path); }
    }
}
