namespace Engine.Formats.Safetensors;

/// <summary>One Safetensors file, memory-mapped and validated: the header is checked in full at open, after which
/// every tensor's extent is known to lie inside the file, and views are handed out without copying.
/// The checks are those of the reference implementation (docs/formats-safetensors.md has the list): a header length
/// of at most 100 MB that fits in the file; a header of valid UTF-8 JSON that is one object starting with '{';
/// entries with a known dtype, a shape of at most 64 non-negative dimensions and [BEGIN, END] data offsets; no
/// duplicate names or properties; <c>__metadata__</c> a map of strings; each extent exactly the shape's size in its
/// dtype, without overflow; and the extents tiling the data buffer exactly, with no overlap, hole or trailing byte.
/// Disposing the file unmaps it: views it handed out stop working.</summary>
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
    /// <summary>Length of the file in bytes.</summary>
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

    /// <summary>Maps and validates a file. The file stays mapped (and open for reading) until the result is disposed.</summary>
    /// <param name="path">The .safetensors file.</param>
    /// <exception cref="ModelFormatException">The file cannot be opened (kind <see cref="FormatErrorKind.Io"/>) or
    /// breaks a rule of the format; the error names the file, the tensor or field, and the byte offset.</exception>
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

    /// <summary>Validates a Safetensors file already in memory, with the same checks as <see cref="Open"/>. The array
    /// is pinned, not copied, until the result is disposed: do not change it meanwhile.</summary>
    /// <param name="bytes">The whole file.</param>
    /// <param name="source">What to call the file in <see cref="FilePath"/> and in error messages.</param>
    /// <exception cref="ArgumentNullException"><paramref name="bytes"/> is null.</exception>
    /// <exception cref="ModelFormatException">The bytes break a rule of the format.</exception>
    public static SafetensorsFile Parse(byte[] bytes, string source = "<memory>")
    {
        ArgumentNullException.ThrowIfNull(bytes);
        var region = MappedRegion.FromBytes(bytes, source);
        try { return Parse(region); }
        catch
        {
            region.Dispose();
            throw;
        }
    }

    /// <summary>Validates bytes already mapped (or in memory, via <see cref="MappedRegion.FromBytes"/>). On success
    /// the returned file owns <paramref name="region"/> and disposes it; on failure the caller still owns it.</summary>
    internal static SafetensorsFile Parse(MappedRegion region, string? filePath = null)
    {
        filePath ??= region.Source;
        return new SafetensorsFile(region, filePath, SafetensorsHeaderParser.Parse(region, filePath));
    }

    /// <summary>True when the file holds a tensor of this exact name.</summary>
    /// <param name="name">The tensor name, as in the header ("model.layers.0.self_attn.q_proj.weight").</param>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>Looks up a tensor's header entry by its exact name.</summary>
    /// <param name="name">The tensor name, as in the header.</param>
    /// <param name="info">The entry when the tensor exists; null otherwise.</param>
    /// <returns>False when the file has no tensor of that name.</returns>
    public bool TryGetInfo(string name, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out SafetensorsTensorInfo info) =>
        _byName.TryGetValue(name, out info);

    /// <summary>The header entry for a tensor.</summary>
    /// <param name="name">The tensor name, as in the header.</param>
    /// <exception cref="ModelFormatException">The file has no such tensor (kind <see cref="FormatErrorKind.MissingKey"/>).</exception>
    public SafetensorsTensorInfo GetInfo(string name) =>
        _byName.TryGetValue(name, out var info) ? info
            : throw new ModelFormatException(FormatErrorKind.MissingKey, "no such tensor in the file", name, filePath: FilePath);

    /// <summary>A zero-copy view of a tensor, with the shape REVERSED into ggml order (Shape[0] is the
    /// contiguous dimension) and the dtype mapped to the ggml type the engine computes with. Dtypes with no
    /// ggml equivalent (U8, BOOL, FP8, ...) are readable through <see cref="GetBytes"/> but have no view.</summary>
    /// <param name="name">The tensor name, as in the header.</param>
    /// <exception cref="ModelFormatException">The file has no such tensor (kind MissingKey), or its dtype has no
    /// ggml type (kind UnknownTensorType).</exception>
    public TensorView GetView(string name) => CreateView(GetInfo(name));

    /// <summary>As <see cref="GetView"/>, but false when the name is absent; a present tensor of a dtype with no ggml
    /// type still throws.</summary>
    /// <param name="name">The tensor name, as in the header.</param>
    /// <param name="view">The view when the tensor exists; null otherwise.</param>
    /// <exception cref="ModelFormatException">The tensor's dtype has no ggml type (kind UnknownTensorType).</exception>
    public bool TryGetView(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out TensorView? view)
    {
        view = _byName.TryGetValue(name, out var info) ? CreateView(info) : null;
        return view is not null;
    }

    /// <summary>The raw bytes of a tensor of any dtype, in the file's layout, without copying. The span points into
    /// the map: do not keep it past <see cref="Dispose"/>.</summary>
    /// <param name="name">The tensor name, as in the header.</param>
    /// <exception cref="ModelFormatException">The file has no such tensor (kind MissingKey).</exception>
    /// <exception cref="ArgumentOutOfRangeException">The tensor is over 2 GiB, more than a span can cover.</exception>
    /// <exception cref="ObjectDisposedException">The file has been disposed.</exception>
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

    /// <summary>Unmaps and closes the file. Views handed out by it stop working: their
    /// <see cref="TensorView.Pointer"/>, <see cref="TensorView.Bytes"/> and <see cref="TensorView.ReadBytes"/> throw
    /// <see cref="ObjectDisposedException"/>, and pointers taken earlier dangle.</summary>
    public void Dispose() => _region.Dispose();
}
