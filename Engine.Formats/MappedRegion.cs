using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace Engine.Formats;

/// <summary>A read-only range of bytes that stays at one address for its lifetime: a memory-mapped file
/// (weights are never copied to the heap) or a pinned array (for tests that build files in memory).
/// Readers validate every offset against <see cref="Length"/> before they hand out a view. Internal: users get
/// validated <see cref="TensorView"/>s from the readers, never a raw region to index into.</summary>
internal sealed unsafe class MappedRegion : IDisposable
{
    readonly MemoryMappedFile? _map;
    readonly MemoryMappedViewAccessor? _view;
    GCHandle _pin;
    byte* _pointer;
    readonly string? _filePath; // set for a mapped file: Read goes through the file, not the map
    Microsoft.Win32.SafeHandles.SafeFileHandle? _readHandle;
    readonly Lock _openHandle = new();
    // A deferred region: its bytes are made by _produce into native memory when first read, and can be dropped again.
    readonly Action<IntPtr>? _produce;
    // Optionally, part of a deferred region's bytes made straight into a reader's buffer (Read), without making the rest.
    readonly ProduceRange? _produceRange;
    readonly Lock _materialize = new();

    /// <summary>Writes bytes [offset, offset + destination.Length) of a deferred region into destination, returning false
    /// when it cannot make that range alone (then the whole region is made and copied from).</summary>
    public delegate bool ProduceRange(long offset, Span<byte> destination);
    bool _disposed;

    public long Length { get; }
    /// <summary>The file this region maps, or a description of the in-memory source.</summary>
    public string Source { get; }

    MappedRegion(string source, long length) { Source = source; Length = length; }

    /// <summary>Maps a whole file read-only. The file is opened with sharing that denies writers where the OS
    /// allows it (checklist F12: a file truncated while mapped is a documented limitation).</summary>
    public static MappedRegion OpenFile(string path)
    {
        FileStream stream;
        try { stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ModelFormatException(FormatErrorKind.Io, $"cannot open file: {e.Message}", filePath: path, inner: e);
        }
        long length = stream.Length;
        if (length == 0)
        {
            stream.Dispose();
            // An empty file cannot be mapped; it is still a valid (empty) region for the readers to reject.
            return new MappedRegion(path, 0);
        }
        MemoryMappedFile map;
        try { map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stream.Dispose();
            throw new ModelFormatException(FormatErrorKind.Io, $"cannot map file: {e.Message}", filePath: path, inner: e);
        }
        var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        return new MappedRegion(path, length, map, view);
    }

    MappedRegion(string source, long length, MemoryMappedFile map, MemoryMappedViewAccessor view) : this(source, length)
    {
        _filePath = source;
        _map = map;
        _view = view;
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _pointer = p + view.PointerOffset;
    }

    /// <summary>Wraps bytes already in memory (pinned for the region's lifetime).</summary>
    public static MappedRegion FromBytes(byte[] bytes, string source = "<memory>")
    {
        var region = new MappedRegion(source, bytes.Length);
        region._pin = GCHandle.Alloc(bytes, GCHandleType.Pinned);
        region._pointer = (byte*)region._pin.AddrOfPinnedObject();
        return region;
    }

    /// <summary>A region whose bytes are computed rather than read: `produce` fills the Length bytes at the address it is
    /// given, when the region is first read. <see cref="DropDeferred"/> frees them again (a later read makes them
    /// anew, possibly at another address), so a copy that a backend has turned into a layout of its own does not stay
    /// resident beside it. Used for GPTQ / AWQ layers, whose Q4_0 rows are computed from the checkpoint's packing.
    /// `produceRange`, when given, makes a part of the bytes for <see cref="Read"/> while they are not in memory, so a
    /// backend that copies them into a layout of its own (the CPU's 8-row repack reads in 4 MiB chunks) never holds
    /// them all, nor leaves freed blocks of their size in the native heap.</summary>
    public static MappedRegion Deferred(string source, long length, Action<IntPtr> produce, ProduceRange? produceRange = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        return new MappedRegion(source, length, produce, produceRange);
    }

    MappedRegion(string source, long length, Action<IntPtr> produce, ProduceRange? produceRange) : this(source, length)
    {
        _produce = produce;
        _produceRange = produceRange;
    }

    /// <summary>Address of the first byte. Only for code that has validated its offsets against Length.</summary>
    public byte* Pointer => _pointer != null || Length == 0 ? _pointer
        : _produce is not null && !_disposed ? Materialize() : throw new ObjectDisposedException(Source);

    byte* Materialize()
    {
        lock (_materialize)
        {
            ObjectDisposedException.ThrowIf(_disposed, Source);
            if (_pointer != null) return _pointer;
            var bytes = (byte*)NativeMemory.AlignedAlloc((nuint)Length, 64);
            try { _produce!((IntPtr)bytes); }
            catch { NativeMemory.AlignedFree(bytes); throw; }
            return _pointer = bytes;
        }
    }

    /// <summary>Whether this region's bytes are computed (<see cref="Deferred"/>).</summary>
    public bool IsDeferred => _produce is not null;

    /// <summary>Whether a deferred region's bytes are in memory now (false for other regions).</summary>
    public bool HoldsDeferredBytes => _produce is not null && _pointer != null;

    /// <summary>Frees a deferred region's bytes (nothing for other regions). The caller guarantees that nothing reads
    /// the region meanwhile; the next read computes the bytes again.</summary>
    public void DropDeferred()
    {
        if (_produce is null) return;
        lock (_materialize)
        {
            if (_pointer == null) return;
            NativeMemory.AlignedFree(_pointer);
            _pointer = null;
        }
    }

    /// <summary>A span over [offset, offset+length); throws if the range is outside the region or over 2 GiB.</summary>
    public ReadOnlySpan<byte> Span(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > Length || length > Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, {offset}+{length}) is outside the region of {Length} bytes");
        if (length > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(length), "a span cannot cover more than 2 GiB; use the pointer");
        // Through Pointer, so a view used after its file is disposed throws instead of reading unmapped memory.
        return new ReadOnlySpan<byte>(Pointer + offset, (int)length);
    }

    /// <summary>Copies [offset, offset + destination.Length) into destination. A mapped file is read with ordinary
    /// file reads (the page cache), not through the map: a backend that copies weights into a layout of its own
    /// (the CPU backend's repacked matrices) would otherwise fault every page of the map into this process, and
    /// resident memory would hold the weights twice. Safe to call from several threads.</summary>
    public void Read(long offset, Span<byte> destination)
    {
        if (offset < 0 || offset > Length || destination.Length > Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, {offset}+{destination.Length}) is outside the region of {Length} bytes");
        if (_filePath is null)
        {
            if (_produceRange is not null && !_disposed && _pointer == null && _produceRange(offset, destination)) return;
            new ReadOnlySpan<byte>(Pointer + offset, destination.Length).CopyTo(destination);
            return;
        }
        var handle = ReadHandle();
        while (!destination.IsEmpty)
        {
            int n = RandomAccess.Read(handle, destination, offset);
            if (n <= 0) throw new ModelFormatException(FormatErrorKind.Io, $"file ended at byte {offset} while reading weights", filePath: _filePath);
            destination = destination[n..];
            offset += n;
        }
    }

    Microsoft.Win32.SafeHandles.SafeFileHandle ReadHandle()
    {
        lock (_openHandle)
        {
            ObjectDisposedException.ThrowIf(_pointer == null, Source);
            return _readHandle ??= File.OpenHandle(_filePath!, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        }
    }

    public void Dispose()
    {
        lock (_openHandle) { _readHandle?.Dispose(); _readHandle = null; }
        if (_view is not null)
        {
            if (_pointer != null) _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
        if (_pin.IsAllocated) _pin.Free();
        lock (_materialize)
        {
            if (_produce is not null && _pointer != null) NativeMemory.AlignedFree(_pointer);
            _pointer = null;
            _disposed = true;
        }
    }
}
