using System.Text;

namespace Engine.Formats.Gguf;

/// <summary>A GGUF file (versions 2 and 3), validated and memory-mapped. Metadata is copied out at load;
/// tensor data stays in the map and is handed out as zero-copy <see cref="TensorView"/>s.
/// Every count, length and offset is checked against the bytes present before anything is allocated.
/// What is checked (docs/formats-gguf.md has the full list): the magic and version; that every count fits in the
/// bytes that remain; caps on keys (64 KiB), string values (16 MiB) and arrays (64 Mi elements); unique, non-empty
/// keys and tensor names (at most 63 UTF-8 bytes, as ggml allows); valid UTF-8; known value and tensor types;
/// 1 to 4 dimensions whose element and byte counts do not overflow; rows of whole quant blocks;
/// a power-of-two <c>general.alignment</c> of at most 1 MiB; tensors contiguous, in order, aligned, and inside the
/// file. Big-endian files are rejected. Disposing the file unmaps it: views it handed out stop working.</summary>
public sealed class GgufFile : IDisposable
{
    /// <summary>The first four bytes of a GGUF file, "GGUF", read as a little-endian uint32.</summary>
    public const uint Magic = 0x46554747;

    readonly MappedRegion _region;
    readonly Dictionary<string, TensorView> _views;
    readonly Dictionary<string, GgufTensorInfo> _infos;
    readonly long _fileSize;

    /// <summary>The path the file was opened from, or the source name given to <see cref="Parse(byte[], string)"/>.</summary>
    public string Path => _region.Source;
    /// <summary>The GGUF version of the file: 2 or 3.</summary>
    public uint Version { get; }
    /// <summary>Alignment of the tensor data in bytes: <c>general.alignment</c> when the file sets it, else 32.</summary>
    public uint Alignment { get; }
    /// <summary>Absolute offset of the tensor data section (aligned end of the header).</summary>
    public long DataOffset { get; }
    /// <summary>Length of the file in bytes.</summary>
    public long FileSize => _fileSize;
    /// <summary>Metadata in file order.</summary>
    public IReadOnlyList<KeyValuePair<string, GgufValue>> MetadataList { get; }
    /// <summary>Metadata by key (ordinal, case-sensitive); <see cref="GgufMetadataAccess"/> adds typed getters.</summary>
    public IReadOnlyDictionary<string, GgufValue> Metadata { get; }
    /// <summary>Tensor infos in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    GgufFile(MappedRegion region, uint version, uint alignment, long dataOffset,
        List<KeyValuePair<string, GgufValue>> metadata, Dictionary<string, GgufValue> byKey, List<GgufTensorInfo> tensors, long? headerOnlyFileSize = null)
    {
        _region = region;
        _fileSize = headerOnlyFileSize ?? region.Length;
        HeaderOnly = headerOnlyFileSize is not null;
        Version = version;
        Alignment = alignment;
        DataOffset = dataOffset;
        MetadataList = metadata;
        Metadata = byKey;
        Tensors = tensors;
        _views = new Dictionary<string, TensorView>(HeaderOnly ? 0 : tensors.Count, StringComparer.Ordinal);
        _infos = new Dictionary<string, GgufTensorInfo>(tensors.Count, StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            _infos[t.Name] = t;
            // A header read without its data has no bytes to view.
            if (!HeaderOnly) _views[t.Name] = new TensorView(t.Name, t.Type, [.. t.Shape], t.ElementCount, t.ByteSize, dataOffset + t.Offset, region);
        }
    }

    /// <summary>True for a file parsed from its header alone (<see cref="ParseHeader"/>): metadata and tensor infos,
    /// no tensor data.</summary>
    internal bool HeaderOnly { get; }

    /// <summary>A tensor's header entry by its exact name; works on header-only files too.</summary>
    internal bool TryGetTensorInfo(string name, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out GgufTensorInfo info) =>
        _infos.TryGetValue(name, out info);

    /// <summary>Validates the header of a GGUF file from its first bytes, without its data: what a remote file's
    /// first range request returns. Every check of <see cref="Open"/> runs, with the tensors checked against
    /// <paramref name="fileSize"/>. When the header runs past <paramref name="head"/> the error is
    /// <see cref="FormatErrorKind.FileTooShort"/>: read more and try again (unless head is the whole file).</summary>
    internal static GgufFile ParseHeader(byte[] head, long fileSize, string source)
    {
        if (fileSize < head.Length) throw new ArgumentOutOfRangeException(nameof(fileSize), "the file is shorter than the bytes read from it");
        var region = MappedRegion.FromBytes(head, source);
        try { return Parse(region, fileSize); }
        catch { region.Dispose(); throw; }
    }

    /// <summary>Maps and validates a GGUF file. The file stays mapped (and open for reading) until the result is
    /// disposed.</summary>
    /// <param name="path">The .gguf file.</param>
    /// <exception cref="ModelFormatException">The file cannot be opened (kind <see cref="FormatErrorKind.Io"/>) or
    /// breaks a rule of the format; the error names the file, the field and the byte offset.</exception>
    public static GgufFile Open(string path)
    {
        var region = MappedRegion.OpenFile(path);
        try { return Parse(region); }
        catch (ModelFormatException e) { region.Dispose(); throw e.WithFile(path); }
        catch { region.Dispose(); throw; }
    }

    /// <summary>Validates a GGUF file already in memory, with the same checks as <see cref="Open"/>. The array is
    /// pinned, not copied, until the result is disposed: do not change it meanwhile.</summary>
    /// <param name="bytes">The whole file.</param>
    /// <param name="source">What to call the file in <see cref="Path"/> and in error messages.</param>
    /// <exception cref="ModelFormatException">The bytes break a rule of the format.</exception>
    public static GgufFile Parse(byte[] bytes, string source = "<memory>")
    {
        var region = MappedRegion.FromBytes(bytes, source);
        try { return Parse(region); }
        catch { region.Dispose(); throw; }
    }

    /// <summary>True when the bytes start with the GGUF magic (to pick a reader; the file may still be invalid).</summary>
    /// <param name="head">The first bytes of a file (at least 4 for a true answer).</param>
    public static bool HasMagic(ReadOnlySpan<byte> head) => head.Length >= 4 && head[0] == 'G' && head[1] == 'G' && head[2] == 'U' && head[3] == 'F';

    /// <summary>Looks up a tensor by its exact name.</summary>
    /// <param name="name">The tensor name, e.g. "blk.0.attn_q.weight".</param>
    /// <param name="view">The tensor's validated view when it exists; null otherwise.</param>
    /// <returns>False when the file has no tensor of that name.</returns>
    public bool TryGetTensor(string name, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out TensorView view) =>
        _views.TryGetValue(name, out view);

    /// <summary>A tensor by its exact name.</summary>
    /// <param name="name">The tensor name, e.g. "blk.0.attn_q.weight".</param>
    /// <exception cref="ModelFormatException">The file has no such tensor (kind <see cref="FormatErrorKind.MissingKey"/>).</exception>
    public TensorView GetTensor(string name) => _views.TryGetValue(name, out var v) ? v
        : throw new ModelFormatException(FormatErrorKind.MissingKey,
            HeaderOnly && _infos.ContainsKey(name) ? $"tensor '{name}' has no data here: only the file's header was read" : $"tensor '{name}' is not in the file",
            field: name, filePath: Path);

    /// <summary>Unmaps and closes the file. Views handed out by it stop working: their
    /// <see cref="TensorView.Pointer"/>, <see cref="TensorView.Bytes"/> and <see cref="TensorView.ReadBytes"/> throw
    /// <see cref="ObjectDisposedException"/>, and pointers taken earlier dangle.</summary>
    public void Dispose() => _region.Dispose();

    static GgufFile Parse(MappedRegion region, long? headerOnlyFileSize = null)
    {
        // The bytes the counts may claim: the whole file's, also when only its head is here.
        long fileLength = headerOnlyFileSize ?? region.Length;
        var cur = new GgufCursor(region, 0, headerOnlyFileSize);
        if (region.Length < 4)
            throw new ModelFormatException(FormatErrorKind.FileTooShort, $"file is {region.Length} bytes, too short for a GGUF header",
                offset: 0, expected: ">= 24 bytes", actual: $"{region.Length} bytes");
        uint magic = cur.ReadU32("magic");
        if (magic != Magic)
        {
            var bytes = BitConverter.GetBytes(magic);
            bool swapped = magic == 0x47475546; // "FUGG": the magic written by a big-endian writer
            throw new ModelFormatException(swapped ? FormatErrorKind.WrongEndianness : FormatErrorKind.BadMagic,
                swapped ? "GGUF magic is byte-swapped: a big-endian file, which this reader does not support" : "not a GGUF file: bad magic",
                offset: 0, expected: "\"GGUF\"", actual: Printable(bytes));
        }
        long versionAt = cur.Position;
        uint version = cur.ReadU32("version");
        if ((version & 0xFFFF) == 0 && version != 0)
            throw new ModelFormatException(FormatErrorKind.WrongEndianness, $"GGUF version {version} looks byte-swapped: a big-endian file",
                offset: versionAt, expected: "2 or 3", actual: version.ToString());
        if (version is not (2 or 3))
            throw new ModelFormatException(FormatErrorKind.UnsupportedVersion,
                version == 1 ? "GGUF version 1 is not supported (re-convert the model with a current llama.cpp)" : $"unsupported GGUF version {version}",
                field: "version", offset: versionAt, expected: "2 or 3", actual: version.ToString());

        long countsAt = cur.Position;
        ulong tensorCount = cur.ReadU64("tensor count");
        ulong kvCount = cur.ReadU64("metadata count");
        // Min-bytes-per-entry: a count that cannot fit in what remains is rejected before any list is sized by it.
        CheckCount(kvCount, GgufLimits.MinBytesPerKeyValue, cur.FileRemaining, "metadata count", countsAt + 8);
        CheckCount(tensorCount, GgufLimits.MinBytesPerTensorInfo, cur.FileRemaining, "tensor count", countsAt);

        // Collections grow with what is actually read: presizing them by a declared count would let a file of zeros
        // (or a sparse file, free on disk) make the reader allocate ~3x its size, and a count over int.MaxValue
        // (possible in a file over 28 GiB) would wrap negative in the cast.
        var metadata = new List<KeyValuePair<string, GgufValue>>(InitialCapacity(kvCount));
        var byKey = new Dictionary<string, GgufValue>(InitialCapacity(kvCount), StringComparer.Ordinal);
        for (ulong i = 0; i < kvCount; i++)
        {
            long keyAt = cur.Position;
            string key = cur.ReadString(GgufLimits.MaxKeyBytes, "metadata key");
            if (key.Length == 0)
                throw new ModelFormatException(FormatErrorKind.InvalidName, $"metadata key #{i} is empty", offset: keyAt);
            if (byKey.ContainsKey(key))
                throw new ModelFormatException(FormatErrorKind.Duplicate, $"duplicate metadata key '{key}'", field: key, offset: keyAt);
            long typeAt = cur.Position;
            uint typeId = cur.ReadU32("value type of " + key);
            var value = ReadValue(ref cur, typeId, key, typeAt);
            metadata.Add(new(key, value));
            byKey.Add(key, value);
        }

        uint alignment = GgufLimits.DefaultAlignment;
        if (byKey.TryGetValue(GgufKeys.Alignment, out var alignValue))
        {
            if (alignValue.Type != GgufValueType.UInt32)
                throw new ModelFormatException(FormatErrorKind.BadAlignment, "general.alignment must be a uint32",
                    field: GgufKeys.Alignment, expected: "uint32", actual: alignValue.TypeName);
            alignment = (uint)alignValue.Value;
            if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > GgufLimits.MaxAlignment)
                throw new ModelFormatException(FormatErrorKind.BadAlignment, $"general.alignment {alignment} is not a power of two in [1, {GgufLimits.MaxAlignment}]",
                    field: GgufKeys.Alignment, expected: "a power of two <= 1 MiB", actual: alignment.ToString());
        }

        var tensors = new List<GgufTensorInfo>(InitialCapacity(tensorCount));
        var names = new HashSet<string>(StringComparer.Ordinal);
        long expectedOffset = 0;
        for (ulong i = 0; i < tensorCount; i++)
        {
            var info = ReadTensorInfo(ref cur, i);
            if (!names.Add(info.Name))
                throw new ModelFormatException(FormatErrorKind.Duplicate, $"duplicate tensor name '{info.Name}'", field: info.Name, offset: info.InfoOffset);
            // Tensors must be contiguous, in order, each at the aligned end of the previous one (as llama.cpp requires):
            // no overlap, no holes, so a small file cannot declare many tensors over the same bytes.
            if (info.Offset != expectedOffset)
                throw new ModelFormatException(FormatErrorKind.BadTensorOffset,
                    info.Offset % alignment != 0 ? $"tensor '{info.Name}' offset is not a multiple of the alignment {alignment}"
                        : $"tensor '{info.Name}' offset is not where the previous tensor ends (tensors must be contiguous and in order)",
                    field: info.Name, offset: info.InfoOffset, expected: expectedOffset.ToString(), actual: info.Offset.ToString());
            long end = CheckedAdd(info.Offset, info.ByteSize, info.Name, info.InfoOffset);
            expectedOffset = AlignUp(end, alignment, info.Name, info.InfoOffset);
            tensors.Add(info);
        }

        // The data section starts at the aligned end of the header. A vocabulary-only file (no tensors) may end before it.
        long dataOffset = AlignUp(cur.Position, alignment, "data section", cur.Position);
        foreach (var t in tensors)
        {
            long start = CheckedAdd(dataOffset, t.Offset, t.Name, t.InfoOffset);
            long end = CheckedAdd(start, t.ByteSize, t.Name, t.InfoOffset);
            if (end > fileLength)
                throw new ModelFormatException(FormatErrorKind.TensorOutOfBounds,
                    $"tensor '{t.Name}' [{start}, {end}) lies outside the file of {fileLength} bytes: the file is corrupted or incomplete (a truncated download?)",
                    field: t.Name, offset: t.InfoOffset, expected: $"end <= {fileLength}", actual: $"end {end}");
        }
        return new GgufFile(region, version, alignment, dataOffset, metadata, byKey, tensors, headerOnlyFileSize);
    }

    static GgufTensorInfo ReadTensorInfo(ref GgufCursor cur, ulong index)
    {
        long infoAt = cur.Position;
        string name = cur.ReadString(GgufLimits.MaxKeyBytes, $"tensor #{index} name");
        if (name.Length == 0 || Encoding.UTF8.GetByteCount(name) > GgufLimits.MaxTensorNameBytes)
            throw new ModelFormatException(FormatErrorKind.InvalidName,
                name.Length == 0 ? $"tensor #{index} has an empty name" : $"tensor name '{name}' is over {GgufLimits.MaxTensorNameBytes} bytes",
                field: name, offset: infoAt, expected: $"1..{GgufLimits.MaxTensorNameBytes} bytes", actual: $"{Encoding.UTF8.GetByteCount(name)} bytes");
        long dimsAt = cur.Position;
        uint nDims = cur.ReadU32($"dimension count of '{name}'");
        if (nDims == 0 || nDims > GgufLimits.MaxDimensions)
            throw new ModelFormatException(FormatErrorKind.InvalidShape, $"tensor '{name}' has {nDims} dimensions",
                field: name, offset: dimsAt, expected: $"1..{GgufLimits.MaxDimensions}", actual: nDims.ToString());
        var shape = new long[nDims];
        long elements = 1;
        bool overflow = false;
        for (int d = 0; d < nDims; d++)
        {
            long dimAt = cur.Position;
            ulong ne = cur.ReadU64($"dimension {d} of '{name}'");
            if (ne > long.MaxValue)
                throw new ModelFormatException(FormatErrorKind.InvalidShape, $"tensor '{name}' dimension {d} is negative or too large",
                    field: name, offset: dimAt, expected: "0..2^63-1", actual: ne.ToString());
            shape[d] = (long)ne;
            if (!overflow && elements != 0 && shape[d] != 0)
            {
                try { elements = checked(elements * shape[d]); }
                catch (OverflowException) { overflow = true; }
            }
            else if (shape[d] == 0) elements = 0;
        }
        if (overflow && elements != 0)
            throw new ModelFormatException(FormatErrorKind.Overflow, $"tensor '{name}' element count {string.Join(" x ", shape)} overflows 64 bits",
                field: name, offset: dimsAt);
        long typeAt = cur.Position;
        uint typeId = cur.ReadU32($"type of '{name}'");
        if (!GgmlTypes.TryGet(typeId, out var typeInfo))
            throw new ModelFormatException(FormatErrorKind.UnknownTensorType, $"tensor '{name}' has unknown ggml type id {typeId}",
                field: name, offset: typeAt, actual: typeId.ToString());
        if (shape[0] % typeInfo.BlockSize != 0)
            throw new ModelFormatException(FormatErrorKind.NotBlockAligned,
                $"tensor '{name}' row length {shape[0]} is not a multiple of the {typeInfo.Name} block size {typeInfo.BlockSize}",
                field: name, offset: dimsAt, expected: $"multiple of {typeInfo.BlockSize}", actual: shape[0].ToString());
        long rows = shape[0] == 0 ? 0 : elements / shape[0];
        long? bytes = typeInfo.TryByteSize(shape[0], rows);
        if (bytes is null)
            throw new ModelFormatException(FormatErrorKind.Overflow, $"tensor '{name}' byte size overflows 64 bits", field: name, offset: dimsAt);
        long offsetAt = cur.Position;
        ulong offset = cur.ReadU64($"offset of '{name}'");
        if (offset > long.MaxValue)
            throw new ModelFormatException(FormatErrorKind.BadTensorOffset, $"tensor '{name}' offset {offset} is out of range", field: name, offset: offsetAt);
        return new GgufTensorInfo(name, typeInfo.Type, Array.AsReadOnly(shape), elements, bytes.Value, (long)offset, infoAt);
    }

    static GgufValue ReadValue(ref GgufCursor cur, uint typeId, string key, long typeAt)
    {
        if (!GgufValueTypes.IsDefined(typeId))
            throw new ModelFormatException(FormatErrorKind.InvalidValueType, $"metadata '{key}' has unknown value type {typeId}",
                field: key, offset: typeAt, actual: typeId.ToString());
        var type = (GgufValueType)typeId;
        if (type != GgufValueType.Array) return new GgufValue(type, ReadScalar(ref cur, type, key));

        long elemTypeAt = cur.Position;
        uint elemId = cur.ReadU32($"element type of '{key}'");
        if (!GgufValueTypes.IsDefined(elemId) || elemId == (uint)GgufValueType.Array)
            throw new ModelFormatException(FormatErrorKind.InvalidValueType,
                elemId == (uint)GgufValueType.Array ? $"metadata '{key}' is an array of arrays, which is not supported" : $"metadata '{key}' has unknown array element type {elemId}",
                field: key, offset: elemTypeAt, actual: elemId.ToString());
        var elemType = (GgufValueType)elemId;
        long countAt = cur.Position;
        ulong count = cur.ReadU64($"length of '{key}'");
        int elemSize = GgufValueTypes.FixedSize(elemType);
        // Strings take at least their 8-byte length each.
        long minBytes = elemType == GgufValueType.String ? 8 : elemSize;
        if (count > (ulong)GgufLimits.MaxArrayElements)
            throw new ModelFormatException(FormatErrorKind.LengthTooLarge, $"metadata '{key}' declares {count} elements, over the cap of {GgufLimits.MaxArrayElements}",
                field: key, offset: countAt, expected: $"<= {GgufLimits.MaxArrayElements}", actual: count.ToString());
        if ((long)count * minBytes > cur.FileRemaining)
            throw new ModelFormatException(FormatErrorKind.LengthTooLarge, $"metadata '{key}' declares {count} elements that cannot fit in the {cur.FileRemaining} bytes remaining",
                field: key, offset: countAt, expected: $"<= {cur.FileRemaining / minBytes}", actual: count.ToString());
        int n = (int)count;
        object array = elemType switch
        {
            GgufValueType.String => ReadStrings(ref cur, n, key),
            GgufValueType.UInt8 => ReadArray<byte>(ref cur, n, key),
            GgufValueType.Int8 => ReadArray<sbyte>(ref cur, n, key),
            GgufValueType.UInt16 => ReadArray<ushort>(ref cur, n, key),
            GgufValueType.Int16 => ReadArray<short>(ref cur, n, key),
            GgufValueType.UInt32 => ReadArray<uint>(ref cur, n, key),
            GgufValueType.Int32 => ReadArray<int>(ref cur, n, key),
            GgufValueType.Float32 => ReadArray<float>(ref cur, n, key),
            GgufValueType.UInt64 => ReadArray<ulong>(ref cur, n, key),
            GgufValueType.Int64 => ReadArray<long>(ref cur, n, key),
            GgufValueType.Float64 => ReadArray<double>(ref cur, n, key),
            GgufValueType.Bool => ReadBools(ref cur, n, key),
            _ => throw new InvalidOperationException("unreachable"),
        };
        return new GgufValue(GgufValueType.Array, array, elemType);
    }

    static object ReadScalar(ref GgufCursor cur, GgufValueType type, string key) => type switch
    {
        GgufValueType.UInt8 => cur.ReadU8(key),
        GgufValueType.Int8 => (sbyte)cur.ReadU8(key),
        GgufValueType.UInt16 => cur.ReadU16(key),
        GgufValueType.Int16 => (short)cur.ReadU16(key),
        GgufValueType.UInt32 => cur.ReadU32(key),
        GgufValueType.Int32 => (int)cur.ReadU32(key),
        GgufValueType.Float32 => cur.ReadF32(key),
        GgufValueType.UInt64 => cur.ReadU64(key),
        GgufValueType.Int64 => (long)cur.ReadU64(key),
        GgufValueType.Float64 => cur.ReadF64(key),
        GgufValueType.Bool => ReadBool(ref cur, key),
        GgufValueType.String => cur.ReadString(GgufLimits.MaxStringBytes, $"value of '{key}'"),
        _ => throw new InvalidOperationException("unreachable"),
    };

    static bool ReadBool(ref GgufCursor cur, string key)
    {
        long at = cur.Position;
        byte b = cur.ReadU8(key);
        if (b > 1)
            throw new ModelFormatException(FormatErrorKind.WrongMetadataType, $"metadata '{key}' bool value is {b}", field: key, offset: at, expected: "0 or 1", actual: b.ToString());
        return b == 1;
    }

    static string[] ReadStrings(ref GgufCursor cur, int n, string key)
    {
        var result = new string[n];
        for (int i = 0; i < n; i++) result[i] = cur.ReadString(GgufLimits.MaxStringBytes, key, i);
        return result;
    }

    static bool[] ReadBools(ref GgufCursor cur, int n, string key)
    {
        var result = new bool[n];
        for (int i = 0; i < n; i++) result[i] = ReadBool(ref cur, key);
        return result;
    }

    static unsafe T[] ReadArray<T>(ref GgufCursor cur, int n, string key) where T : unmanaged
    {
        long bytes = (long)n * sizeof(T);
        cur.Require(bytes, $"array '{key}'");
        var result = new T[n];
        // GGUF is little-endian and so is every platform .NET runs this engine on.
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("big-endian hosts are not supported");
        for (int i = 0; i < n; i++)
        {
            result[i] = sizeof(T) switch
            {
                1 => ReinterpretByte<T>(cur.ReadU8(key)),
                2 => Reinterpret<ushort, T>(cur.ReadU16(key)),
                4 => Reinterpret<uint, T>(cur.ReadU32(key)),
                _ => Reinterpret<ulong, T>(cur.ReadU64(key)),
            };
        }
        return result;
    }

    static T ReinterpretByte<T>(byte b) where T : unmanaged => System.Runtime.CompilerServices.Unsafe.As<byte, T>(ref b);
    static TTo Reinterpret<TFrom, TTo>(TFrom v) where TFrom : unmanaged where TTo : unmanaged =>
        System.Runtime.CompilerServices.Unsafe.As<TFrom, TTo>(ref v);

    static int InitialCapacity(ulong declared) => (int)Math.Min(declared, 1024);

    static void CheckCount(ulong count, long minBytesEach, long remaining, string what, long offset)
    {
        if (count > (ulong)(remaining / minBytesEach))
            throw new ModelFormatException(FormatErrorKind.LengthTooLarge,
                $"{what} {count} cannot fit in the {remaining} bytes that remain (each entry takes at least {minBytesEach} bytes)",
                field: what, offset: offset, expected: $"<= {remaining / minBytesEach}", actual: count.ToString());
    }

    static long CheckedAdd(long a, long b, string what, long offset)
    {
        try { return checked(a + b); }
        catch (OverflowException)
        {
            throw new ModelFormatException(FormatErrorKind.Overflow, $"offset arithmetic for '{what}' overflows 64 bits", field: what, offset: offset);
        }
    }

    static long AlignUp(long value, uint alignment, string what, long offset)
    {
        long padded = CheckedAdd(value, alignment - 1, what, offset);
        return padded - padded % alignment;
    }

    static string Printable(byte[] bytes) => "\"" + string.Concat(bytes.Select(b => b is >= 32 and < 127 ? ((char)b).ToString() : $"\\x{b:x2}")) + "\"";
}
