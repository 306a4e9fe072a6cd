namespace Engine.Formats;

/// <summary>A validated, zero-copy view of one tensor's bytes inside a mapped file.
/// Shape is in ggml order: Shape[0] is the contiguous dimension (a row), the last is the slowest.</summary>
public sealed unsafe class TensorView
{
    public string Name { get; }
    public GgmlType Type { get; }
    /// <summary>Dimensions in ggml order (ne0 first: the contiguous one).</summary>
    public IReadOnlyList<long> Shape { get; }
    public long ElementCount { get; }
    public long ByteSize { get; }
    /// <summary>Absolute byte offset of the data in the file.</summary>
    public long FileOffset { get; }
    readonly MappedRegion _region;

    public TensorView(string name, GgmlType type, long[] shape, long elementCount, long byteSize, long fileOffset, MappedRegion region)
    {
        if (fileOffset < 0 || byteSize < 0 || fileOffset > region.Length || byteSize > region.Length - fileOffset)
            throw new ArgumentOutOfRangeException(nameof(fileOffset), "tensor outside its region; the reader must validate first");
        Name = name;
        Type = type;
        Shape = shape;
        ElementCount = elementCount;
        ByteSize = byteSize;
        FileOffset = fileOffset;
        _region = region;
    }

    /// <summary>Elements per row (ne0) and the number of rows (product of the other dimensions).</summary>
    public long RowLength => Shape.Count == 0 ? 1 : Shape[0];
    public long RowCount => RowLength == 0 ? 0 : ElementCount / RowLength;

    /// <summary>Pointer to the first byte; valid while the file that owns it is open.</summary>
    public byte* Pointer => _region.Pointer + FileOffset;

    /// <summary>The bytes as a span (tensors over 2 GiB must be read through <see cref="Pointer"/> row by row).</summary>
    public ReadOnlySpan<byte> Bytes => _region.Span(FileOffset, ByteSize);

    /// <summary>A view of part of this tensor's bytes under its own name and shape, still zero-copy: one expert
    /// of a stacked [cols, rows, experts] tensor is the byte range of its rows. The range must lie inside this
    /// tensor, and byteSize must hold exactly the elements of shape (the caller knows the row size of the type).</summary>
    public TensorView Slice(string name, long[] shape, long byteOffset, long byteSize)
    {
        if (byteOffset < 0 || byteSize < 0 || byteOffset > ByteSize || byteSize > ByteSize - byteOffset)
            throw new ArgumentOutOfRangeException(nameof(byteOffset), $"slice [{byteOffset}, +{byteSize}) is outside tensor '{Name}' ({ByteSize} bytes)");
        long elements = 1;
        foreach (long d in shape) elements = checked(elements * d);
        return new TensorView(name, Type, shape, elements, byteSize, FileOffset + byteOffset, _region);
    }

    /// <summary>Copies bytes [offset, offset + destination.Length) of this tensor, through the file when the region
    /// maps one (see <see cref="MappedRegion.Read"/>: the map's pages are not touched).</summary>
    public void ReadBytes(long offset, Span<byte> destination)
    {
        if (offset < 0 || offset > ByteSize || destination.Length > ByteSize - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, +{destination.Length}) is outside tensor '{Name}' ({ByteSize} bytes)");
        _region.Read(FileOffset + offset, destination);
    }

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
    public override string ToString() => $"{Name} {Type} {ShapeText}";
}
