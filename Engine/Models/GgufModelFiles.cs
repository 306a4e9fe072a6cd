using System.Globalization;
using Engine.Formats;
using Engine.Formats.Gguf;

namespace Engine.Models;

/// <summary>
/// A GGUF model in one file, or split over several by llama.cpp's gguf-split: PREFIX-00001-of-00003.gguf holds the
/// model's metadata, and every part its own tensor infos and data, with split.no (its index from 0, u16), split.count
/// (u16) and split.tensors.count (the model's tensors over all parts, i32; required in the first part). As llama.cpp's
/// loader, it is opened by its
/// first part; the others are found by llama_split_path's rule (PREFIX-%05d-of-%05d.gguf, the prefix being the first
/// part's path less its -00001-of-0000N.gguf) and mapped like the first. Each part must carry its own index and the same
/// count, no tensor name may appear twice, and the tensors must add up to split.tensors.count; otherwise the error is a
/// <see cref="ModelFormatException"/> naming the part. Nothing is read from a part's data before all parts check out.
/// </summary>
internal sealed class GgufModelFiles : IDisposable
{
    public const string SplitNo = "split.no", SplitCount = "split.count", SplitTensorsCount = "split.tensors.count";

    readonly GgufFile[] _parts;
    readonly Dictionary<string, (GgufFile File, GgufTensorInfo Info)> _tensors;

    GgufModelFiles(GgufFile[] parts, Dictionary<string, (GgufFile, GgufTensorInfo)> tensors)
    {
        _parts = parts;
        _tensors = tensors;
    }

    /// <summary>The file named when opening: the whole model, or the first part with the model's metadata.</summary>
    public GgufFile First => _parts[0];
    /// <summary>Every part in order (one for a file that is not split).</summary>
    public IReadOnlyList<GgufFile> Parts => _parts;
    public IReadOnlyDictionary<string, GgufValue> Metadata => First.Metadata;
    /// <summary>The tensor infos of the parts after the first (what the first's header does not list).</summary>
    public IEnumerable<GgufTensorInfo> MoreTensors => _parts.Skip(1).SelectMany(p => p.Tensors);
    /// <summary>Every tensor of the model with the part it lies in, in part and file order.</summary>
    public IEnumerable<(GgufFile File, GgufTensorInfo Info)> Tensors => _parts.SelectMany(p => p.Tensors.Select(t => (p, t)));
    /// <summary>Bytes of all parts together.</summary>
    public long TotalSize => _parts.Sum(p => p.FileSize);

    public bool TryGetTensor(string name, out TensorView view)
    {
        if (_tensors.TryGetValue(name, out var entry)) return entry.File.TryGetTensor(name, out view!);
        view = null!;
        return false;
    }

    /// <summary>llama.cpp's llama_split_prefix: the first part's path less its -00001-of-0000N.gguf; throws when the name
    /// does not end so.</summary>
    static string Prefix(string firstPart, int count)
    {
        string suffix = PartSuffix(0, count);
        if (firstPart.Length <= suffix.Length || !firstPart.EndsWith(suffix, StringComparison.Ordinal))
            throw new ModelFormatException(FormatErrorKind.InvalidConfig,
                $"the file says it is part 1 of {count} of a split GGUF, but its name does not end in '{suffix}', so the other parts cannot be found (keep the names llama.cpp's gguf-split gave them)",
                field: SplitCount, expected: $"a name ending in {suffix}", actual: Path.GetFileName(firstPart), filePath: firstPart);
        return firstPart[..^suffix.Length];
    }

    /// <summary>llama.cpp's llama_split_path: part `index` (from 0) of `count`.</summary>
    public static string PartPath(string prefix, int index, int count) => prefix + PartSuffix(index, count);

    static string PartSuffix(int index, int count) => string.Create(CultureInfo.InvariantCulture, $"-{index + 1:00000}-of-{count:00000}.gguf");

    /// <summary>Opens the model at `path`, and when it is the first part of a split model, every other part.</summary>
    public static GgufModelFiles Open(string path)
    {
        var first = GgufFile.Open(path);
        var parts = new List<GgufFile> { first };
        try
        {
            var tensors = new Dictionary<string, (GgufFile, GgufTensorInfo)>(StringComparer.Ordinal);
            Add(tensors, first);
            int count = Split(first, SplitCount) ?? 0;
            if (count <= 1) return new GgufModelFiles([.. parts], tensors);
            if (count > ushort.MaxValue)
                throw new ModelFormatException(FormatErrorKind.InvalidConfig, $"{SplitCount} is {count}; gguf-split writes a 16-bit count",
                    field: SplitCount, expected: "at most 65535", actual: count.ToString(CultureInfo.InvariantCulture), filePath: path);

            int no = Split(first, SplitNo) ?? throw Missing(SplitNo, path);
            if (no != 0)
                throw new ModelFormatException(FormatErrorKind.InvalidConfig,
                    $"this is part {no + 1} of {count} of a split GGUF: open the model by its first part, the one whose {SplitNo} is 0",
                    field: SplitNo, expected: "0", actual: no.ToString(CultureInfo.InvariantCulture), filePath: path);
            int expectedTensors = Split(first, SplitTensorsCount) ?? throw Missing(SplitTensorsCount, path);
            string prefix = Prefix(path, count);
            for (int i = 1; i < count; i++)
            {
                string partPath = PartPath(prefix, i, count);
                if (!File.Exists(partPath))
                    throw new ModelFormatException(FormatErrorKind.Io,
                        $"part {i + 1} of {count} of the split GGUF is missing: expected {partPath}", field: SplitCount, filePath: partPath);
                var part = GgufFile.Open(partPath);
                parts.Add(part);
                CheckPart(part, i, count, expectedTensors);
                Add(tensors, part);
            }
            if (tensors.Count != expectedTensors)
                throw new ModelFormatException(FormatErrorKind.ShardMismatch,
                    $"the {count} parts hold {tensors.Count} tensors, but {SplitTensorsCount} says {expectedTensors}: a part is from another split or incomplete",
                    field: SplitTensorsCount, expected: expectedTensors.ToString(CultureInfo.InvariantCulture), actual: tensors.Count.ToString(CultureInfo.InvariantCulture), filePath: path);
            return new GgufModelFiles([.. parts], tensors);
        }
        catch
        {
            foreach (var part in parts) part.Dispose();
            throw;
        }
    }

    static void CheckPart(GgufFile part, int index, int count, int expectedTensors)
    {
        string path = part.Path;
        int no = Split(part, SplitNo) ?? throw Missing(SplitNo, path);
        int partCount = Split(part, SplitCount) ?? throw Missing(SplitCount, path);
        // llama.cpp reads split.tensors.count from the first part only; a later part that has it must agree.
        int partTensors = Split(part, SplitTensorsCount) ?? expectedTensors;
        if (no != index)
            throw Mismatch(SplitNo, $"holds part {no + 1} where part {index + 1} belongs", index, no, path);
        if (partCount != count)
            throw Mismatch(SplitCount, $"belongs to a split of {partCount} parts, not {count}", count, partCount, path);
        if (partTensors != expectedTensors)
            throw Mismatch(SplitTensorsCount, $"belongs to a split of {partTensors} tensors, not {expectedTensors}", expectedTensors, partTensors, path);
    }

    static ModelFormatException Mismatch(string key, string what, int expected, int actual, string path) =>
        new(FormatErrorKind.ShardMismatch, $"this part of a split GGUF {what}: it is from another split", field: key,
            expected: expected.ToString(CultureInfo.InvariantCulture), actual: actual.ToString(CultureInfo.InvariantCulture), filePath: path);

    static ModelFormatException Missing(string key, string path) =>
        new(FormatErrorKind.MissingKey, $"a part of a split GGUF needs the key {key}", field: key, filePath: path);

    static void Add(Dictionary<string, (GgufFile, GgufTensorInfo)> tensors, GgufFile part)
    {
        foreach (var t in part.Tensors)
        {
            if (tensors.TryGetValue(t.Name, out var earlier))
                throw new ModelFormatException(FormatErrorKind.Duplicate, $"tensor '{t.Name}' is in two parts of the split GGUF (also in {earlier.Item1.Path})",
                    field: t.Name, filePath: part.Path);
            tensors.Add(t.Name, (part, t));
        }
    }

    /// <summary>A split.* key as a non-negative int (gguf-split writes u16 and i32; any integer type in range is taken),
    /// or null when absent.</summary>
    static int? Split(GgufFile file, string key)
    {
        long? value;
        try { value = file.Metadata.GetIntegerOrNull(key); }
        catch (ModelFormatException e) { throw e.WithFile(file.Path); }
        if (value is null) return null;
        if (value is < 0 or > int.MaxValue)
            throw new ModelFormatException(FormatErrorKind.InvalidConfig, $"{key} is out of range", field: key,
                expected: "0 .. 2^31 - 1", actual: value.Value.ToString(CultureInfo.InvariantCulture), filePath: file.Path);
        return (int)value.Value;
    }

    public void Dispose()
    {
        foreach (var part in _parts) part.Dispose();
    }
}
