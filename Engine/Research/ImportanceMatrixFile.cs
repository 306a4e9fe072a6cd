using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Engine.Formats;
using Engine.Formats.Gguf;

namespace Engine;

/// <summary>
/// An importance matrix file as llama.cpp's common_imatrix_load reads it for llama-quantize: the GGUF that
/// llama-imatrix (and <see cref="ImportanceMatrix.Save"/>) writes, or the legacy binary ".dat" form. Raw, as stored:
/// per weight the sums of squared activations and the token counts; what llama-quantize makes of them is
/// Quantization.ImportanceWeights' business.
/// </summary>
internal sealed class ImportanceMatrixFile
{
    /// <summary>One weight's data: Sums holds Counts.Length matrices (experts) of Sums.Length / Counts.Length columns.
    /// In the legacy format Sums are already means times the call count, and Counts holds that one count.</summary>
    internal sealed record Entry(float[] Sums, long[] Counts)
    {
        public int Columns => Sums.Length / Counts.Length;
    }

    ImportanceMatrixFile(SortedDictionary<string, Entry> entries, List<string> datasets, int chunkCount, int chunkSize,
        bool isLegacy, bool hasMetadata)
    {
        Entries = entries;
        Datasets = datasets;
        ChunkCount = chunkCount;
        ChunkSize = chunkSize;
        IsLegacy = isLegacy;
        HasMetadata = hasMetadata;
    }

    /// <summary>The entries by weight name (ordinal order, as llama.cpp's std::map).</summary>
    public IReadOnlyDictionary<string, Entry> Entries { get; }
    /// <summary>imatrix.datasets (GGUF) or the legacy trailer's dataset name; may be empty.</summary>
    public IReadOnlyList<string> Datasets { get; }
    /// <summary>imatrix.chunk_count, or the legacy trailer's call count; 0 when absent.</summary>
    public int ChunkCount { get; }
    /// <summary>imatrix.chunk_size; 0 when absent and for the legacy format.</summary>
    public int ChunkSize { get; }
    /// <summary>The file is the legacy binary format.</summary>
    public bool IsLegacy { get; }
    /// <summary>A GGUF file with all three of imatrix.datasets, imatrix.chunk_count and imatrix.chunk_size
    /// (llama-quantize refuses a GGUF imatrix without them).</summary>
    public bool HasMetadata { get; }

    const string SumsSuffix = ".in_sum2";
    const string CountsSuffix = ".counts";

    /// <summary>Reads and validates an importance matrix file: GGUF when it starts with the GGUF magic, else the legacy
    /// format.</summary>
    /// <exception cref="ModelFormatException">The file cannot be read, or is corrupt, truncated or inconsistent (a sum
    /// without its counts, a type other than F32, sums that do not split into the counted matrices).</exception>
    public static ImportanceMatrixFile Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Span<byte> head = stackalloc byte[4];
        int got;
        try
        {
            using var probe = File.OpenRead(path);
            got = probe.ReadAtLeast(head, 4, throwOnEndOfStream: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(FormatErrorKind.Io, $"cannot read the importance matrix: {e.Message}", filePath: path, inner: e);
        }
        return got == 4 && GgufFile.HasMagic(head) ? LoadGguf(path) : LoadLegacy(path);
    }

    static ImportanceMatrixFile LoadGguf(string path)
    {
        using var gguf = GgufFile.Open(path);
        if (gguf.Tensors.Count < 1)
            throw new ModelFormatException(FormatErrorKind.MissingKey, "the importance matrix holds no tensors", filePath: path);
        var md = gguf.Metadata;
        var datasets = new List<string>();
        if (md.TryGetValue("imatrix.datasets", out var ds) && ds.IsArray && ds.ElementType == GgufValueType.String && ds.Value is Array names)
            foreach (var name in names) datasets.Add((string)name!);
        int chunkCount = ReadU32(md, "imatrix.chunk_count", path), chunkSize = ReadU32(md, "imatrix.chunk_size", path);
        bool hasMetadata = md.ContainsKey("imatrix.datasets") && md.ContainsKey("imatrix.chunk_count") && md.ContainsKey("imatrix.chunk_size");

        var pairs = new SortedDictionary<string, (TensorView? Sums, TensorView? Counts)>(StringComparer.Ordinal);
        foreach (var info in gguf.Tensors)
        {
            if (info.Name.EndsWith(SumsSuffix, StringComparison.Ordinal))
            {
                var name = info.Name[..^SumsSuffix.Length];
                pairs[name] = (gguf.GetTensor(info.Name), pairs.GetValueOrDefault(name).Counts);
            }
            else if (info.Name.EndsWith(CountsSuffix, StringComparison.Ordinal))
            {
                var name = info.Name[..^CountsSuffix.Length];
                pairs[name] = (pairs.GetValueOrDefault(name).Sums, gguf.GetTensor(info.Name));
            }
        }
        var entries = new SortedDictionary<string, Entry>(StringComparer.Ordinal);
        foreach (var (name, (sums, counts)) in pairs)
        {
            if (sums is null || counts is null)
                throw new ModelFormatException(FormatErrorKind.MissingKey, $"'{name}' has {(sums is null ? "counts but no sums" : "sums but no counts")}",
                    field: name + (sums is null ? SumsSuffix : CountsSuffix), filePath: path);
            foreach (var t in new[] { sums, counts })
                if (t.Type != GgmlType.F32)
                    throw new ModelFormatException(FormatErrorKind.UnknownTensorType, "importance sums and counts must be F32",
                        field: t.Name, expected: "F32", actual: t.Type.ToString(), filePath: path);
            long nval = sums.ElementCount, ncounts = counts.ElementCount;
            if (ncounts < 1 || nval < 1 || nval % ncounts != 0)
                throw new ModelFormatException(FormatErrorKind.InvalidShape, "the sums do not split into one row per count",
                    field: sums.Name, expected: $"a multiple of {ncounts} values", actual: nval.ToString(System.Globalization.CultureInfo.InvariantCulture), filePath: path);
            var sumValues = MemoryMarshal.Cast<byte, float>(sums.Bytes).ToArray();
            var countValues = MemoryMarshal.Cast<byte, float>(counts.Bytes);
            var rounded = new long[ncounts];
            for (int j = 0; j < ncounts; j++) rounded[j] = LRound(countValues[j]);
            entries[name] = new Entry(sumValues, rounded);
        }
        return new ImportanceMatrixFile(entries, datasets, chunkCount, chunkSize, isLegacy: false, hasMetadata);
    }

    static int ReadU32(IReadOnlyDictionary<string, GgufValue> md, string key, string path)
    {
        if (!md.TryGetValue(key, out var v)) return 0;
        if (v.Type != GgufValueType.UInt32)
            throw new ModelFormatException(FormatErrorKind.WrongMetadataType, "wrong metadata type", field: key, expected: "uint32", actual: v.TypeName, filePath: path);
        // llama.cpp reads it into an int32.
        return unchecked((int)(uint)v.Value);
    }

    /// <summary>C's lround of a count stored as a float: halves away from zero. Values outside the long range (and
    /// NaN) come out as long.MinValue, as x86's conversion gives them; a non-positive count means "no data".</summary>
    static long LRound(float value)
    {
        double r = Math.Round((double)value, MidpointRounding.AwayFromZero);
        return double.IsNaN(r) || r >= 9.2233720368547758e18 || r < -9.2233720368547758e18 ? long.MinValue : (long)r;
    }

    /// <summary>The legacy format: int32 entry count; per entry int32 name length, the name, int32 call count, int32
    /// value count and the float values; then optionally int32 chunk count, int32 length and the dataset name.</summary>
    static ImportanceMatrixFile LoadLegacy(string path)
    {
        byte[] bytes;
        try
        {
            long length = new FileInfo(path).Length;
            // Every entry needs at least 16 bytes; the format has no cap, but a file this size is not an imatrix.
            if (length > int.MaxValue)
                throw new ModelFormatException(FormatErrorKind.LengthTooLarge, "the file is too large for a legacy importance matrix", filePath: path);
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(FormatErrorKind.Io, $"cannot read the importance matrix: {e.Message}", filePath: path, inner: e);
        }
        int pos = 0;
        int ReadInt(string what)
        {
            if (bytes.Length - pos < 4)
                throw new ModelFormatException(FormatErrorKind.FileTooShort, $"truncated legacy importance matrix: no room for the {what}", offset: pos, filePath: path);
            int v = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(pos));
            pos += 4;
            return v;
        }
        int count = ReadInt("entry count");
        if (count < 1)
            throw new ModelFormatException(FormatErrorKind.BadMagic, "neither a GGUF file nor a legacy importance matrix (no entries)",
                offset: 0, actual: count.ToString(System.Globalization.CultureInfo.InvariantCulture), filePath: path);
        var entries = new SortedDictionary<string, Entry>(StringComparer.Ordinal);
        for (int i = 0; i < count; i++)
        {
            int at = pos;
            int nameLength = ReadInt("name length");
            if (nameLength < 0 || nameLength > bytes.Length - pos)
                throw new ModelFormatException(FormatErrorKind.LengthTooLarge, $"entry {i + 1}: name length {nameLength} does not fit the file", offset: at, filePath: path);
            var nameBytes = bytes.AsSpan(pos, nameLength);
            int nul = nameBytes.IndexOf((byte)0);
            if (nul >= 0) nameBytes = nameBytes[..nul];   // llama.cpp reads the name as a C string
            string name;
            try { name = new System.Text.UTF8Encoding(false, true).GetString(nameBytes); }
            catch (System.Text.DecoderFallbackException e)
            {
                throw new ModelFormatException(FormatErrorKind.InvalidUtf8, $"entry {i + 1}: the name is not UTF-8", offset: at + 4, filePath: path, inner: e);
            }
            pos += nameLength;
            int calls = ReadInt("call count");
            at = pos;
            int values = ReadInt("value count");
            if (values < 1 || (long)values * 4 > bytes.Length - pos)
                throw new ModelFormatException(FormatErrorKind.LengthTooLarge, $"entry {i + 1} ('{name}'): {values} values do not fit the file",
                    field: name, offset: at, filePath: path);
            var sums = MemoryMarshal.Cast<byte, float>(bytes.AsSpan(pos, values * 4)).ToArray();
            pos += values * 4;
            entries[name] = new Entry(sums, [calls]);
        }
        var datasets = new List<string>();
        int chunkCount = 0;
        if (pos < bytes.Length)
        {
            chunkCount = ReadInt("chunk count");
            if (pos < bytes.Length)
            {
                int at = pos;
                int length = ReadInt("dataset name length");
                if (length > bytes.Length - pos)
                    throw new ModelFormatException(FormatErrorKind.LengthTooLarge, $"dataset name length {length} does not fit the file", offset: at, filePath: path);
                if (length > 0)
                {
                    var text = bytes.AsSpan(pos, length);
                    int nul = text.IndexOf((byte)0);
                    datasets.Add(System.Text.Encoding.UTF8.GetString(nul >= 0 ? text[..nul] : text));
                }
            }
        }
        return new ImportanceMatrixFile(entries, datasets, chunkCount, chunkSize: 0, isLegacy: true, hasMetadata: false);
    }
}
