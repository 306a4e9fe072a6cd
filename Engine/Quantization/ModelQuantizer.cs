using Engine.Formats;
using Engine.Formats.Gguf;

namespace Engine.Quantization;

/// <summary>What to quantize a model to.</summary>
internal sealed record QuantizeOptions
{
    /// <summary>A llama-quantize type or mix name (Q4_K_M, Q8_0, IQ4_XS...; case-insensitive).</summary>
    public required string Type { get; init; }
    /// <summary>Every quantizable tensor in the mix's base type (llama-quantize --pure).</summary>
    public bool Pure { get; init; }
    /// <summary>Importance matrix (llama-quantize --imatrix): the GGUF llama-imatrix or `engine imatrix` writes, or
    /// llama.cpp's legacy .dat file; null for none.</summary>
    public string? ImatrixPath { get; init; }
    /// <summary>What quantize.imatrix.file records; null records <see cref="ImatrixPath"/> as given, as llama-quantize
    /// records its argument (the output is byte-identical to llama-quantize's when the two strings are the same).</summary>
    public string? RecordedImatrixPath { get; init; }
    /// <summary>llama-quantize --include-weights: use the importance matrix only for the weights whose name contains
    /// one of these strings.</summary>
    public IReadOnlyList<string> IncludeWeights { get; init; } = [];
    /// <summary>llama-quantize --exclude-weights: do not use the importance matrix for the weights whose name contains
    /// one of these strings. Cannot be combined with <see cref="IncludeWeights"/>.</summary>
    public IReadOnlyList<string> ExcludeWeights { get; init; } = [];
    /// <summary>Worker threads; 0 means one per core. The output does not depend on it.</summary>
    public int Threads { get; init; }
    /// <summary>Allow tensors that are quantized already to be dequantized and quantized again.</summary>
    public bool AllowRequantize { get; init; }
}

/// <summary>Where a quantization stands: tensor Index (1-based) of Count is done. Weighted: its rows were quantized
/// with importance weights from the importance matrix.</summary>
internal readonly record struct QuantizeProgress(int Index, int Count, string Name, GgmlType From, GgmlType To,
    IReadOnlyList<long> Shape, long BytesIn, long BytesOut, bool Weighted = false);

/// <summary>
/// llama-quantize: writes a GGUF with the same metadata, the tensors in name order, each in the type llama.cpp's
/// quantizer would choose (<see cref="TensorTypePlanner"/>) with the same bytes. F16 and BF16 inputs are widened to
/// F32 first, as llama.cpp does. Rows are split across threads; each row is quantized on its own, so the result does
/// not depend on the thread count. The file is written to a temporary name and renamed when complete, so a failure or
/// a cancellation leaves nothing behind.
/// </summary>
internal static class ModelQuantizer
{
    /// <summary>ggml's GGML_QNT_VERSION, written to general.quantization_version.</summary>
    public const uint QuantizationVersion = 2;

    /// <summary>Output bytes one slab of rows may take: bounds the buffers however large a tensor is.</summary>
    const long SlabBytes = 32 << 20;

    public static Task QuantizeAsync(string input, string output, QuantizeOptions options, IProgress<QuantizeProgress>? progress,
        CancellationToken ct) =>
        Task.Run(() => Quantize(input, output, options, progress, ct), ct);

    public static void Quantize(string input, string output, QuantizeOptions options, IProgress<QuantizeProgress>? progress,
        CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrEmpty(input);
        ArgumentException.ThrowIfNullOrEmpty(output);
        ArgumentNullException.ThrowIfNull(options);
        var mix = QuantizationMixes.Find(options.Type)
            ?? throw new QuantizationException(QuantizationErrorKind.UnknownType,
                $"unknown quantization type '{options.Type}'; valid types: {QuantizationMixes.Names}");
        if (string.Equals(Path.GetFullPath(input), Path.GetFullPath(output), StringComparison.Ordinal))
            throw new QuantizationException(QuantizationErrorKind.SameFile, $"input and output are the same file: {input}");
        int threads = options.Threads > 0 ? options.Threads : Environment.ProcessorCount;

        if (options.IncludeWeights.Count > 0 && options.ExcludeWeights.Count > 0)
            throw new ArgumentException("give the weights to include or the weights to exclude, not both", nameof(options));

        var importance = options.ImatrixPath is null ? null : ImportanceWeights.Load(options.ImatrixPath, options.IncludeWeights, options.ExcludeWeights);
        // llama-quantize passes no imatrix at all when the filters left no entry.
        if (importance is { Count: 0 }) importance = null;
        using var gguf = GgufFile.Open(input);
        var plan = PlanFile(gguf, mix, options.Pure, hasImatrix: importance is not null);
        var rowImportance = importance is null ? null : MatchImportance(plan, importance, options.ImatrixPath!);

        List<KeyValuePair<string, GgufValue>> imatrixKeys = importance is null ? [] : ImatrixMetadata(importance, options.RecordedImatrixPath ?? options.ImatrixPath!);
        var writer = new GgufWriter();
        foreach (var (key, value) in gguf.MetadataList)
            if (!DroppedKeys.Contains(key) && !imatrixKeys.Any(k => k.Key == key)) writer.AddMetadata(key, value);
        writer.AddMetadata(GgufKeys.QuantizationVersion, QuantizationVersion);
        writer.AddMetadata(GgufKeys.FileType, mix.FileType);
        foreach (var (key, value) in imatrixKeys) writer.AddMetadata(key, value);

        for (int i = 0; i < plan.Count; i++)
        {
            var (view, to) = plan[i];
            if (view.Type != to && view.Type.Info().IsQuantized && !options.AllowRequantize)
                throw new QuantizationException(QuantizationErrorKind.AlreadyQuantized,
                    $"tensor {view.Name} is {view.Type} already; requantizing is disabled (pass --allow-requantize to allow it)");
            if (view.Type != to && !RowFormats.IsSupported(view.Type))
                throw new QuantizationException(QuantizationErrorKind.UnsupportedType, $"tensor {view.Name}: cannot read type {view.Type}");
            if (view.Type != to && !RowEncoder.CanEncode(to))
                throw new QuantizationException(QuantizationErrorKind.UnsupportedType, $"tensor {view.Name}: cannot write type {to}");
            var shape = view.Shape.ToArray();
            long size = GgufWriter.TensorByteSize(to, shape);
            int index = i + 1;
            var weights = view.Type == to ? null : rowImportance?[i];
            writer.AddTensor(view.Name, to, shape, size, stream =>
            {
                ct.ThrowIfCancellationRequested();
                if (view.Type == to) CopyTensor(view, stream, ct);
                else ConvertTensor(view, to, weights, stream, threads, ct);
                progress?.Report(new QuantizeProgress(index, plan.Count, view.Name, view.Type, to, view.Shape, view.ByteSize, size, weights is not null));
            });
        }
        writer.WriteTo(output);
    }

    /// <summary>Split bookkeeping of the input does not describe the single output file (llama.cpp removes it too);
    /// the two keys llama.cpp sets are removed and appended at the end, where gguf_set_val puts them.</summary>
    static readonly HashSet<string> DroppedKeys =
        ["split.no", "split.count", "split.tensors.count", GgufKeys.QuantizationVersion, GgufKeys.FileType];

    /// <summary>The tensors in output order (<see cref="TensorOrder"/>) with the type each gets.</summary>
    public static List<(TensorView View, GgmlType Type)> PlanFile(GgufFile gguf, QuantizationMix mix, bool pure, bool hasImatrix)
    {
        var views = gguf.Tensors.Select(t => gguf.GetTensor(t.Name)).OrderBy(v => v.Name, TensorOrder.Instance).ToList();
        var types = TensorTypePlanner.Plan(views.Select(v => new TensorShape(v.Name, v.Shape)).ToList(),
            views.Select(v => v.Type).ToList(), mix, ReadShape(gguf.Metadata), pure, hasImatrix);
        return views.Select((v, i) => (v, types[i])).ToList();
    }

    public static ModelShape ReadShape(IReadOnlyDictionary<string, GgufValue> md)
    {
        var arch = md.GetString(GgufKeys.Architecture);
        int First(string suffix, int fallback)
        {
            var key = GgufKeys.Arch(arch, suffix);
            if (!md.TryGetValue(key, out var v)) return fallback;
            // Some architectures store a per-layer list; llama.cpp's n_gqa() reads layer 0.
            if (v.IsArray && v.Value is Array a && a.Length > 0) return Convert.ToInt32(a.GetValue(0), System.Globalization.CultureInfo.InvariantCulture);
            return (int)(v.AsInteger() ?? fallback);
        }
        int heads = First("attention.head_count", 0);
        return new ModelShape(arch, (int)md.GetInteger(GgufKeys.Arch(arch, "block_count")), First("expert_count", 0),
            heads, First("attention.head_count_kv", heads));
    }

    /// <summary>The importance values for each planned tensor that will be converted, as llama_model_quantize_impl
    /// picks them: by exact name; none for a tensor without an entry (llama.cpp says "did not find weights" and
    /// quantizes it without); an entry whose size is not columns x experts is an error, except for the token embedding,
    /// which is quantized without. Unlike llama.cpp, a matrix that matches none of the converted tensors is refused:
    /// it was made for another model, and the file would claim an imatrix it was not quantized with.</summary>
    static float[]?[] MatchImportance(List<(TensorView View, GgmlType Type)> plan, ImportanceWeights importance, string path)
    {
        var result = new float[]?[plan.Count];
        int converted = 0, matched = 0;
        for (int i = 0; i < plan.Count; i++)
        {
            var (view, to) = plan[i];
            if (view.Type == to) continue;
            converted++;
            var values = importance.Find(view.Name);
            if (values is null) continue;
            long columns = view.Shape.Count > 0 ? view.Shape[0] : 1, experts = view.Shape.Count > 2 ? view.Shape[2] : 1;
            if (values.Length != columns * experts)
            {
                if (view.Name is "token_embd.weight" or "per_layer_token_embd.weight") continue;
                throw new QuantizationException(QuantizationErrorKind.BadImatrix,
                    $"the importance matrix holds {values.Length} values for {view.Name}, which needs {columns * experts} " +
                    $"({columns} columns x {experts} matrices): {path} was computed for another model");
            }
            if (view.Shape.Skip(3).Any(d => d != 1))
                throw new QuantizationException(QuantizationErrorKind.UnsupportedType,
                    $"tensor {view.Name} has more than 3 dimensions; importance weights apply to 2-D and 3-D (expert) weights only");
            result[i] = values;
            matched++;
        }
        if (converted > 0 && matched == 0)
            throw new QuantizationException(QuantizationErrorKind.BadImatrix,
                $"the importance matrix {path} has no entry for any tensor of this model ({importance.Count} entries): it was computed " +
                "for another model; make one for this model with `engine imatrix` or llama-imatrix");
        return result;
    }

    /// <summary>The keys llama-quantize adds after general.file_type when it has an imatrix, in its order: the path as
    /// given and the first dataset (each cut to 127 bytes, its strncpy), the entry count, and the chunk count when known.
    /// gguf_set_val moves a key the input already has to the end, so those are dropped from the copied list.</summary>
    static List<KeyValuePair<string, GgufValue>> ImatrixMetadata(ImportanceWeights importance, string recordedPath)
    {
        var keys = new List<KeyValuePair<string, GgufValue>> { new("quantize.imatrix.file", new GgufValue(GgufValueType.String, CutTo127Bytes(recordedPath))) };
        if (importance.Dataset is not null)
            keys.Add(new("quantize.imatrix.dataset", new GgufValue(GgufValueType.String, CutTo127Bytes(importance.Dataset))));
        keys.Add(new("quantize.imatrix.entries_count", new GgufValue(GgufValueType.UInt32, (uint)importance.Count)));
        if (importance.ChunkCount > 0)
            keys.Add(new("quantize.imatrix.chunks_count", new GgufValue(GgufValueType.UInt32, (uint)importance.ChunkCount)));
        return keys;
    }

    /// <summary>At most 127 UTF-8 bytes, cut at a character boundary (llama.cpp cuts at byte 127 even inside a
    /// character; only a path or dataset name of more than 127 bytes with a multi-byte character there differs).</summary>
    static string CutTo127Bytes(string text)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        if (bytes.Length <= 127) return text;
        int end = 127;
        while (end > 0 && (bytes[end] & 0xC0) == 0x80) end--;
        return System.Text.Encoding.UTF8.GetString(bytes, 0, end);
    }

    // llama.cpp refuses to quantize without an imatrix only to the IQ1/IQ2/IQ3 types and to Q2_K inside a Q2_K_S
    // file (tensor_requires_imatrix); we write none of those, so no mix here needs one.

    static void CopyTensor(TensorView view, Stream stream, CancellationToken ct)
    {
        const int chunk = 16 << 20;
        for (long off = 0; off < view.ByteSize; off += chunk)
        {
            ct.ThrowIfCancellationRequested();
            stream.Write(view.Bytes.Slice((int)off, (int)Math.Min(chunk, view.ByteSize - off)));
        }
    }

    /// <summary>Rows to the target type; with importance (columns x experts values), row r of expert r / ne1 uses that
    /// expert's slice, as llama_tensor_quantize_impl hands each chunk its expert's part.</summary>
    static unsafe void ConvertTensor(TensorView view, GgmlType to, float[]? importance, Stream stream, int threads, CancellationToken ct)
    {
        long n = view.RowLength;
        long rows = view.RowCount;
        long rowsPerExpert = view.Shape.Count > 1 ? Math.Max(1, view.Shape[1]) : 1;
        long srcRowBytes = view.Type.Info().TryByteSize(n, 1) ?? throw new QuantizationException(QuantizationErrorKind.UnsupportedType, $"tensor {view.Name}: bad row");
        int dstRowBytes = checked((int)(to.Info().TryByteSize(n, 1) ?? throw new QuantizationException(QuantizationErrorKind.UnsupportedType, $"tensor {view.Name}: bad row")));
        long slabRows = Math.Max(1, Math.Min(rows, SlabBytes / dstRowBytes));
        var dst = new byte[checked((int)(slabRows * dstRowBytes))];
        var from = view.Type == GgmlType.F32 ? null : RowFormats.For(view.Type);
        var opts = new ParallelOptions { MaxDegreeOfParallelism = threads, CancellationToken = ct };
        byte* src = view.Pointer;
        for (long first = 0; first < rows; first += slabRows)
        {
            long count = Math.Min(slabRows, rows - first);
            int parts = (int)Math.Min(threads, count);
            Parallel.For(0, parts, opts, () => from is null ? null : new float[n], (part, _, buffer) =>
            {
                long r0 = first + count * part / parts, r1 = first + count * (part + 1) / parts;
                for (long r = r0; r < r1; r++)
                {
                    var srcRow = new ReadOnlySpan<byte>(src + r * srcRowBytes, checked((int)srcRowBytes));
                    ReadOnlySpan<float> x;
                    if (buffer is null) x = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(srcRow);
                    else { from!.DequantizeRow(srcRow, buffer); x = buffer; }
                    var d = dst.AsSpan(checked((int)((r - first) * dstRowBytes)), dstRowBytes);
                    var weights = importance is null ? default : importance.AsSpan(checked((int)(r / rowsPerExpert * n)), (int)n);
                    RowEncoder.Encode(to, x, d, weights);
                }
                return buffer;
            }, _ => { });
            stream.Write(dst, 0, checked((int)(count * dstRowBytes)));
        }
    }
}

/// <summary>The order of llama.cpp's weights_map (weight_name_comparer): by block number ("blk.N.", -1 for tensors
/// outside the blocks), then by name. llama-quantize writes the tensors and counts attn_v layers in this order.</summary>
internal sealed class TensorOrder : IComparer<string>
{
    public static readonly TensorOrder Instance = new();

    public int Compare(string? a, string? b)
    {
        int la = Layer(a ?? ""), lb = Layer(b ?? "");
        return la != lb ? la.CompareTo(lb) : string.CompareOrdinal(a, b);
    }

    /// <summary>sscanf(name, "blk.%d.", &amp;layer): digits after "blk." (an optional sign), else -1.</summary>
    public static int Layer(string name)
    {
        if (!name.StartsWith("blk.", StringComparison.Ordinal)) return -1;
        int i = 4, sign = 1;
        if (i < name.Length && name[i] is '-' or '+') { sign = name[i] == '-' ? -1 : 1; i++; }
        int start = i;
        long v = 0;
        while (i < name.Length && char.IsAsciiDigit(name[i]) && v <= int.MaxValue) v = v * 10 + (name[i++] - '0');
        return i == start || v > int.MaxValue ? -1 : (int)(sign * v);
    }
}
