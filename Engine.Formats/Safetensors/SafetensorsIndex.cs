using System.Text.Json;

namespace Engine.Formats.Safetensors;

/// <summary>The <c>model.safetensors.index.json</c> of a sharded checkpoint:
/// <c>{"metadata": {...}, "weight_map": {"tensor name": "shard file name", ...}}</c>.
/// Every shard name is checked to be a plain file name inside the model folder (checklist S7).</summary>
public sealed class SafetensorsIndex
{
    /// <summary>The index's conventional file name in a model folder.</summary>
    public const string FileName = "model.safetensors.index.json";
    /// <summary>Index files of real models are a few hundred KB; the cap matches the header cap.</summary>
    const long MaxIndexLength = SafetensorsHeaderParser.MaxHeaderLength;

    /// <summary>The index file.</summary>
    public string Path { get; }
    /// <summary>Tensor name -> shard file name (a bare name, validated).</summary>
    public IReadOnlyDictionary<string, string> WeightMap { get; }
    /// <summary>The distinct shard file names, in ordinal order.</summary>
    public IReadOnlyList<string> ShardNames { get; }

    SafetensorsIndex(string path, Dictionary<string, string> weightMap)
    {
        Path = path;
        WeightMap = weightMap;
        ShardNames = weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
    }

    /// <summary>Reads and validates an index file (mapped, not copied); see <see cref="Parse"/> for the checks. The
    /// shards themselves are not opened (<see cref="SafetensorsModel.Open"/> does that).</summary>
    /// <param name="path">The index file.</param>
    /// <exception cref="ModelFormatException">The file cannot be opened (kind Io), is empty (FileTooShort) or over
    /// 100 MB (LengthTooLarge), or its content is invalid (see <see cref="Parse"/>).</exception>
    public static SafetensorsIndex Load(string path)
    {
        using var region = MappedRegion.OpenFile(path);
        if (region.Length > MaxIndexLength)
            throw new ModelFormatException(FormatErrorKind.LengthTooLarge, "index file is over the size cap", null, 0,
                $"<= {MaxIndexLength} bytes", $"{region.Length} bytes", path);
        if (region.Length == 0)
            throw new ModelFormatException(FormatErrorKind.FileTooShort, "index file is empty", null, 0, filePath: path);
        return Parse(region.Span(0, region.Length), path);
    }

    /// <summary>Validates index JSON: UTF-8, one JSON object with a <c>weight_map</c> object of tensor name to shard file
    /// name, no duplicate properties or tensors. Each shard name must be a plain <c>*.safetensors</c> file name that
    /// stays inside the folder of <paramref name="path"/> (checklist S7: no separators, "..", drive or stream names,
    /// NUL or absolute paths). Other properties ("metadata") are ignored.</summary>
    /// <param name="json">The index file's content.</param>
    /// <param name="path">Where the index lives: shard names are resolved against its folder, and errors name it.</param>
    /// <exception cref="ModelFormatException">Invalid UTF-8 (kind InvalidUtf8), invalid JSON or structure
    /// (InvalidHeader), a duplicate (Duplicate), no weight_map (MissingKey), or an unsafe shard name (UnsafePath).</exception>
    public static SafetensorsIndex Parse(ReadOnlySpan<byte> json, string path)
    {
        string directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        if (!System.Text.Unicode.Utf8.IsValid(json))
            throw new ModelFormatException(FormatErrorKind.InvalidUtf8, "index file is not valid UTF-8", filePath: path);
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });
        Dictionary<string, string>? weightMap = null;
        var seenRoot = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                throw Bad("index must be a JSON object", null, reader.TokenStartIndex, path);
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                string key = reader.GetString()!;
                long keyOffset = reader.TokenStartIndex;
                if (!seenRoot.Add(key))
                    throw new ModelFormatException(FormatErrorKind.Duplicate, $"index has two '{key}' properties", key,
                        keyOffset, filePath: path);
                if (key == "weight_map") weightMap = ReadWeightMap(ref reader, directory, path);
                else reader.Skip(); // "metadata" (total_size, ...) and anything else is informational
            }
            if (reader.Read())
                throw Bad("content after the index's JSON object", null, reader.TokenStartIndex, path);
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(FormatErrorKind.InvalidHeader, $"index is not valid JSON: {e.Message}", null,
                reader.BytesConsumed, filePath: path, inner: e);
        }
        catch (InvalidOperationException e)
        {
            throw new ModelFormatException(FormatErrorKind.InvalidUtf8, $"index string is not valid Unicode: {e.Message}",
                null, reader.TokenStartIndex, filePath: path, inner: e);
        }
        if (weightMap is null)
            throw new ModelFormatException(FormatErrorKind.MissingKey, "index has no weight_map", "weight_map", filePath: path);
        return new SafetensorsIndex(path, weightMap);
    }

    static Dictionary<string, string> ReadWeightMap(ref Utf8JsonReader reader, string directory, string path)
    {
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            throw Bad("weight_map must be an object of tensor name -> shard file", "weight_map", reader.TokenStartIndex, path);
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            string tensor = reader.GetString()!;
            long offset = reader.TokenStartIndex;
            if (!reader.Read() || reader.TokenType != JsonTokenType.String)
                throw Bad("weight_map values must be shard file names", tensor, reader.TokenStartIndex, path);
            string shard = reader.GetString()!;
            CheckShardName(shard, directory, tensor, path);
            if (!map.TryAdd(tensor, shard))
                throw new ModelFormatException(FormatErrorKind.Duplicate,
                    $"weight_map lists the tensor twice ('{map[tensor]}' and '{shard}')", tensor, offset, filePath: path);
        }
        return map;
    }

    /// <summary>S7: a shard must be a plain "*.safetensors" file name that, once canonicalized, stays directly
    /// inside the model folder. Symlinked shards (the Hugging Face cache layout) are fine: only the name is
    /// trusted or not, and the name cannot point anywhere else.</summary>
    internal static string CheckShardName(string shard, string directory, string? tensor, string? indexPath)
    {
        string? problem =
            shard.Length == 0 ? "is empty"
            : shard.Contains('\0') ? "contains NUL"
            : shard.Contains('/') || shard.Contains('\\') ? "contains a path separator"
            : shard.Contains("..") ? "contains '..'"
            : shard.Contains(':') ? "contains ':' (a drive or stream name)"
            : System.IO.Path.IsPathRooted(shard) ? "is an absolute path"
            : !shard.EndsWith(".safetensors", StringComparison.Ordinal) ? "does not end in .safetensors"
            : null;
        string full = "";
        if (problem is null)
        {
            string root = System.IO.Path.GetFullPath(directory);
            full = System.IO.Path.GetFullPath(System.IO.Path.Combine(root, shard));
            // Belt and braces: whatever the platform's rules, the result must be a direct child of the folder.
            if (!string.Equals(System.IO.Path.GetDirectoryName(full), System.IO.Path.TrimEndingDirectorySeparator(root),
                    OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal))
                problem = "resolves outside the model folder";
        }
        if (problem is not null)
            throw new ModelFormatException(FormatErrorKind.UnsafePath, $"shard file name {problem}", tensor, null,
                "a plain *.safetensors file name in the model folder", Quote(shard), indexPath);
        return full;
    }

    static string Quote(string s) => "'" + (s.Length > 200 ? s[..200] + "..." : s).Replace("\0", "\\0") + "'";

    static ModelFormatException Bad(string message, string? field, long offset, string path) =>
        new(FormatErrorKind.InvalidHeader, message, field, offset, filePath: path);
}
