namespace Engine.Formats;

/// <summary>A validated, zero-copy view of one tensor's bytes inside a mapped file.
/// Shape is in ggml order: Shape[0] is the contiguous dimension (a row), the last is the slowest.
/// Views are handed out only by the readers (<see cref="Gguf.GgufFile"/>, <see cref="Safetensors.SafetensorsFile"/>,
/// <see cref="Safetensors.SafetensorsModel"/>), after they have proven that the bytes lie inside the file and match
/// the shape and type. A view is valid while the file that handed it out is open; after that file is disposed,
/// <see cref="Pointer"/>, <see cref="Bytes"/> and <see cref="ReadBytes"/> throw <see cref="ObjectDisposedException"/>.</summary>
public sealed unsafe class TensorView
{
    /// <summary>The tensor's name, exactly as the file spells it (or as <see cref="Slice"/> was given it).</summary>
    public string Name { get; }
    /// <summary>The storage type of the elements. Safetensors dtypes are mapped to their ggml equivalent.</summary>
    public GgmlType Type { get; }
    /// <summary>Dimensions in ggml order (ne0 first: the contiguous one). Empty for a Safetensors scalar.</summary>
    public IReadOnlyList<long> Shape { get; }
    /// <summary>Product of the dimensions (1 for a scalar, 0 when any dimension is 0).</summary>
    public long ElementCount { get; }
    /// <summary>Bytes the tensor takes in the file.</summary>
    public long ByteSize { get; }
    /// <summary>Absolute byte offset of the data in the file.</summary>
    public long FileOffset { get; }
    readonly MappedRegion _region;

    /// <summary>For the readers, which validate first; the shape is copied, so no caller can change it afterwards.</summary>
    internal TensorView(string name, GgmlType type, long[] shape, long elementCount, long byteSize, long fileOffset, MappedRegion region)
    {
        if (fileOffset < 0 || byteSize < 0 || fileOffset > region.Length || byteSize > region.Length - fileOffset)
            throw new ArgumentOutOfRangeException(nameof(fileOffset), "tensor outside its region; the reader must validate first");
        Name = name;
        Type = type;
        Shape = Array.AsReadOnly((long[])shape.Clone());
        ElementCount = elementCount;
        ByteSize = byteSize;
        FileOffset = fileOffset;
        _region = region;
    }

    /// <summary>Elements per row (ne0; 1 for a scalar).</summary>
    public long RowLength => Shape.Count == 0 ? 1 : Shape[0];
    /// <summary>Number of rows: the product of the dimensions after the first (0 for an empty tensor).</summary>
    public long RowCount => RowLength == 0 ? 0 : ElementCount / RowLength;

    /// <summary>Pointer to the first byte, for unsafe code reading tensors of any size (<see cref="Bytes"/> stops at
    /// 2 GiB). Reads must stay within <see cref="ByteSize"/> bytes, and the pointer dangles once the file that owns the
    /// view is disposed: keep the file open for as long as the pointer is used.</summary>
    /// <exception cref="ObjectDisposedException">The file that owns the view has been disposed.</exception>
    public byte* Pointer => _region.Pointer + FileOffset;

    /// <summary>The bytes as a span over the mapped file, without copying.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The tensor is over 2 GiB: read it through <see cref="ReadBytes"/>
    /// or <see cref="Pointer"/>.</exception>
    /// <exception cref="ObjectDisposedException">The file that owns the view has been disposed.</exception>
    public ReadOnlySpan<byte> Bytes => _region.Span(FileOffset, ByteSize);

    /// <summary>A view of part of this tensor's bytes under its own name and shape, still zero-copy: one expert
    /// of a stacked [cols, rows, experts] tensor is the byte range of its rows. The slice keeps this tensor's type.</summary>
    /// <param name="name">The name the slice reports (for messages), e.g. "blk.0.ffn_up_exps.weight[3]".</param>
    /// <param name="shape">The slice's dimensions in ggml order; each must be non-negative.</param>
    /// <param name="byteOffset">Where the slice starts, in bytes from the start of this tensor.</param>
    /// <param name="byteSize">The slice's length in bytes: exactly what <paramref name="shape"/> takes in this type.</param>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> or <paramref name="shape"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The byte range is not inside this tensor.</exception>
    /// <exception cref="ArgumentException">The shape has a negative dimension, overflows, has a row length that is not
    /// whole blocks of the type, or does not take exactly <paramref name="byteSize"/> bytes.</exception>
    public TensorView Slice(string name, long[] shape, long byteOffset, long byteSize)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        if (byteOffset < 0 || byteSize < 0 || byteOffset > ByteSize || byteSize > ByteSize - byteOffset)
            throw new ArgumentOutOfRangeException(nameof(byteOffset), $"slice [{byteOffset}, +{byteSize}) is outside tensor '{Name}' ({ByteSize} bytes)");
        long elements = 1;
        foreach (long d in shape)
        {
            if (d < 0) throw new ArgumentException($"slice '{name}' has a negative dimension in {Format(shape)}", nameof(shape));
            try { elements = checked(elements * d); }
            catch (OverflowException) { throw new ArgumentException($"slice '{name}' element count {Format(shape)} overflows 64 bits", nameof(shape)); }
        }
        // The kernels size their reads from shape and type, so a slice whose bytes and shape disagree would read past it.
        long rowLength = shape.Length == 0 ? 1 : shape[0];
        long rows = rowLength == 0 ? 0 : elements / rowLength;
        long? bytes = Type.Info().TryByteSize(rowLength, rows);
        if (bytes != byteSize)
            throw new ArgumentException(bytes is null
                ? $"slice '{name}' {Type} {Format(shape)}: the row length is not whole {Type} blocks, or the size overflows"
                : $"slice '{name}' {Type} {Format(shape)} takes {bytes} bytes, but the range holds {byteSize}", nameof(shape));
        return new TensorView(name, Type, shape, elements, byteSize, FileOffset + byteOffset, _region);
    }

    /// <summary>Copies bytes [offset, offset + destination.Length) of this tensor. When the view belongs to a file the
    /// bytes are read through the file (the page cache), not through the map, so a caller that copies weights into a
    /// layout of its own does not also fault the mapped pages into memory. Safe to call from several threads.</summary>
    /// <param name="offset">Where to start, in bytes from the start of this tensor.</param>
    /// <param name="destination">Receives the bytes; its length is the number of bytes read.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside this tensor.</exception>
    /// <exception cref="ObjectDisposedException">The file that owns the view has been disposed.</exception>
    /// <exception cref="ModelFormatException">The file became shorter while it was open (kind Io).</exception>
    public void ReadBytes(long offset, Span<byte> destination)
    {
        if (offset < 0 || offset > ByteSize || destination.Length > ByteSize - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, +{destination.Length}) is outside tensor '{Name}' ({ByteSize} bytes)");
        _region.Read(FileOffset + offset, destination);
    }

    /// <summary>Frees the bytes of a view whose bytes are computed on first read (a GPTQ / AWQ layer's Q4_0 rows), once
    /// a backend holds its own copy; they are computed again if read later. Nothing for a view of a file or array.
    /// Nothing may read the view meanwhile.</summary>
    internal void DropComputedBytes() => _region.DropDeferred();

    /// <summary>Whether a view of computed bytes holds them in memory now (false for a view of a file or array).</summary>
    internal bool HoldsComputedBytes => _region.HoldsDeferredBytes;

    /// <summary>Whether this view's bytes are computed on first read (<see cref="DropComputedBytes"/>) rather than mapped.</summary>
    internal bool IsComputed => _region.IsDeferred;

    /// <summary>The shape as text, "[4096, 32000]" (ggml order).</summary>
    public string ShapeText => Format(Shape);

    /// <summary>Name, type and shape, "token_embd.weight Q4_K [4096, 32000]".</summary>
    public override string ToString() => $"{Name} {Type} {ShapeText}";

    static string Format(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";
}
