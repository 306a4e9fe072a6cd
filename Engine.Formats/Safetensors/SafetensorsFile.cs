namespace Engine.Formats.Safetensors;

/// <summary>One Safetensors file, memory-mapped and validated: the header is checked in full at open
/// (see <see cref="SafetensorsHeaderParser"/>), after which every tensor's extent is known to lie inside the
/// file, and views are handed out without copying.</summary>
public sealed class SafetensorsFile : IDisposable
{
    readonly MappedRegion _region;
    readonly Dictionary<string, SafetensorsTensorInfo> _byName;

    /// <summary>The file this was read from, or the in-memory region's description.</summary>
    public string? FilePath { get; }
    /// <summary>N, the length of the JSON header; the data buffer starts at byte 8 + N.</summary>
    public long HeaderLength { get; }
    /// <summary>The <c>__metadata__</c> map (empty when the header has none).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>All tensors, in data-offset order (which is also the order they tile the buffer in).</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors { get; }
    public long FileLength => _region.Length;

    SafetensorsFile(MappedRegion region, string? filePath, SafetensorsHeaderParser.Result parsed)
    {
        _region = region;
        FilePath = filePath;
        HeaderLength = parsed.HeaderLength;
        Metadata = parsed.Metadata;
        Tensors = parsed.Tensors;
        // Names are unique: the parser rejects duplicates.
        _byName = parsed.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    /// <summary>Maps and validates a file. Throws <see cref="ModelFormatException"/> (with FilePath set) for
    /// anything wrong, including a file that cannot be opened (Io).</summary>
    public static SafetensorsFile Open(string path)
    {
        var region = MappedRegion.OpenFile(path);
        try { return Parse(region, path); }
        catch
        {
            region.Dispose();
            throw;
        }
    }

    /// <summary>Validates bytes already mapped (or in memory, via <see cref="MappedRegion.FromBytes"/>). On success
    /// the returned file owns <paramref name="region"/> and disposes it; on failure the caller still owns it.</summary>
    public static SafetensorsFile Parse(MappedRegion region, string? filePath = null)
    {
        filePath ??= region.Source;
        return new SafetensorsFile(region, filePath, SafetensorsHeaderParser.Parse(region, filePath));
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public bool TryGetInfo(string name, out SafetensorsTensorInfo info) => _byName.TryGetValue(name, out info!);

    /// <summary>The entry for a tensor; a missing name is a MissingKey error naming it.</summary>
    public SafetensorsTensorInfo GetInfo(string name) =>
        _byName.TryGetValue(name, out var info) ? info
            : throw new ModelFormatException(FormatErrorKind.MissingKey, "no such tensor in the file", name, filePath: FilePath);

    /// <summary>A zero-copy view of a tensor, with the shape REVERSED into ggml order (Shape[0] is the
    /// contiguous dimension) and the dtype mapped to the ggml type the engine computes with. Dtypes with no
    /// ggml equivalent (U8, BOOL, FP8, ...) are readable through <see cref="GetBytes"/> but have no view.</summary>
    public TensorView GetView(string name) => CreateView(GetInfo(name));

    /// <summary>False when the name is absent; a present tensor of a dtype with no ggml type still throws.</summary>
    public bool TryGetView(string name, out TensorView? view)
    {
        view = _byName.TryGetValue(name, out var info) ? CreateView(info) : null;
        return view is not null;
    }

    /// <summary>The raw bytes of a tensor of any dtype (spans cover at most 2 GiB).</summary>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        var info = GetInfo(name);
        return _region.Span(info.FileOffset, info.ByteSize);
    }

    internal TensorView CreateView(SafetensorsTensorInfo info)
    {
        if (info.DType.ToGgml() is not { } type)
            throw new ModelFormatException(FormatErrorKind.UnknownTensorType,
                $"dtype {info.DType} has no compute type in this engine", info.Name, info.FileOffset,
                "F32, F16, BF16, F64, I8, I16, I32 or I64", info.DType.ToString(), FilePath);
        var shape = new long[info.Shape.Count];
        for (int i = 0; i < shape.Length; i++) shape[i] = info.Shape[shape.Length - 1 - i];
        return new TensorView(info.Name, type, shape, info.ElementCount, info.ByteSize, info.FileOffset, _region);
    }

    public void Dispose() => _region.Dispose();
}
