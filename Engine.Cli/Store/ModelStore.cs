using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace Engine.Cli.Store;

/// <summary>Something wrong with a store name, the hub's answer or a download: one line for the user, exit code 1.</summary>
internal sealed class StoreException(string message) : Exception(message);

/// <summary>A pulled model's name: hub repository `owner/repo` and an optional quant tag (`:Q4_K_M`), on Hugging Face or,
/// with the `modelscope:` prefix, on ModelScope. Checked against a strict pattern because it becomes folder names in the
/// store.</summary>
internal sealed record ModelName(string Owner, string Repo, string? Quant, bool ModelScope = false)
{
    public const string ModelScopePrefix = "modelscope:";

    // A leading letter or digit rules out "", ".", ".." and hidden names; the rest is what the hub allows in names.
    static readonly Regex Part = new("^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$", RegexOptions.CultureInvariant);
    static readonly Regex QuantTag = new("^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$", RegexOptions.CultureInvariant);

    public string Repository => Owner + "/" + Repo;

    /// <summary>The folder under the store root: owner/repo/TAG ("latest" when no quant was named).</summary>
    public string Tag => Quant?.ToUpperInvariant() ?? "latest";

    /// <summary>The store's folder for the hub: huggingface or modelscope.</summary>
    public string Hub => ModelScope ? "modelscope" : "huggingface";

    public override string ToString() => (ModelScope ? ModelScopePrefix : "") + (Quant is null ? Repository : Repository + ":" + Quant);

    public static bool TryParse(string text, out ModelName? name, out string? why)
    {
        name = null;
        why = null;
        bool modelScope = text.StartsWith(ModelScopePrefix, StringComparison.Ordinal);
        if (modelScope) text = text[ModelScopePrefix.Length..];
        string repository = text;
        string? quant = null;
        int colon = text.IndexOf(':');
        if (colon >= 0) { repository = text[..colon]; quant = text[(colon + 1)..]; }
        var parts = repository.Split('/');
        if (parts.Length != 2) { why = "it must be owner/repo or owner/repo:QUANT, with exactly one '/'"; return false; }
        foreach (var part in parts)
            if (!Part.IsMatch(part) || part.Contains(".."))
            {
                why = $"'{part}' is not a valid owner or repository name (letters, digits, '.', '_' and '-', starting with a letter or digit, no '..')";
                return false;
            }
        if (quant is not null && (!QuantTag.IsMatch(quant) || quant.Contains("..")))
        {
            why = $"'{quant}' is not a valid quant tag (letters, digits, '.', '_' and '-', such as Q4_K_M)";
            return false;
        }
        name = new ModelName(parts[0], parts[1], quant, modelScope);
        return true;
    }

    public static ModelName Parse(string text) =>
        TryParse(text, out var name, out var why) ? name! : throw new StoreException($"bad model name '{text}': {why}");
}

/// <summary>What a completed pull recorded: written last, so a folder without it is an unfinished download.</summary>
internal sealed record StoreManifest(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("source")] string Source,
    [property: JsonPropertyName("revision")] string Revision,
    [property: JsonPropertyName("files")] List<StoreManifest.Entry> Files,
    [property: JsonPropertyName("pulled")] DateTimeOffset Pulled)
{
    public sealed record Entry(
        [property: JsonPropertyName("path")] string Path,
        [property: JsonPropertyName("size")] long Size,
        [property: JsonPropertyName("sha256")] string? Sha256);

    public long TotalBytes => Files.Sum(f => f.Size);
}

/// <summary>The local model store: root/HUB/owner/repo/TAG/ holding the pulled files and a manifest.json. Every path it hands
/// out is resolved and checked to stay under the root, whatever a user typed or a server sent.</summary>
internal sealed class ModelStore
{
    public const string ManifestFile = "manifest.json";
    static readonly JsonSerializerOptions Json = new() { WriteIndented = true };
    // One segment of a file path from the hub's listing.
    static readonly Regex FileName = new("^[A-Za-z0-9_][A-Za-z0-9._+-]{0,254}$", RegexOptions.CultureInvariant);

    public string Root { get; }

    public ModelStore(string root) => Root = Path.GetFullPath(root);

    /// <summary>ENGINE_MODELS, else ~/.cache/engine/models (XDG_CACHE_HOME's engine/models when that is set).</summary>
    public static ModelStore Default()
    {
        var configured = Environment.GetEnvironmentVariable("ENGINE_MODELS");
        if (!string.IsNullOrEmpty(configured)) return new ModelStore(configured);
        var cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (string.IsNullOrEmpty(cache))
            cache = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return new ModelStore(Path.Combine(cache, "engine", "models"));
    }

    public string FolderOf(ModelName name) => Inside(Path.Combine(Root, name.Hub, name.Owner, name.Repo, name.Tag));

    /// <summary>Where a file the hub lists is stored for <paramref name="name"/>: its last path segment. Every segment must
    /// be a plain name, since the path also goes into the download address.</summary>
    public string FileOf(ModelName name, string hubPath)
    {
        var segments = hubPath.Split('/');
        if (segments.Any(s => !FileName.IsMatch(s) || s.Contains("..")))
            throw new StoreException($"the hub listed a file named '{hubPath}', which is not a plain file name; refusing to write it");
        return Inside(Path.Combine(FolderOf(name), segments[^1]));
    }

    string Inside(string path)
    {
        var full = Path.GetFullPath(path);
        var root = Root.EndsWith(Path.DirectorySeparatorChar) ? Root : Root + Path.DirectorySeparatorChar;
        if (!full.StartsWith(root, StringComparison.Ordinal))
            throw new StoreException($"'{path}' resolves to {full}, outside the model store {Root}");
        return full;
    }

    public StoreManifest? Manifest(ModelName name)
    {
        var file = Path.Combine(FolderOf(name), ManifestFile);
        return File.Exists(file) ? Read(file) : null;
    }

    static StoreManifest Read(string file)
    {
        try
        {
            return JsonSerializer.Deserialize<StoreManifest>(File.ReadAllText(file), Json)
                   ?? throw new StoreException($"{file} is empty");
        }
        catch (JsonException e) { throw new StoreException($"{file} is not a valid store manifest: {e.Message}"); }
    }

    public void WriteManifest(ModelName name, StoreManifest manifest)
    {
        var file = Path.Combine(FolderOf(name), ManifestFile);
        var temp = file + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(manifest, Json));
        File.Move(temp, file, overwrite: true);
    }

    /// <summary>Every completed pull, by name.</summary>
    public IReadOnlyList<StoreManifest> List()
    {
        if (!Directory.Exists(Root)) return [];
        return Directory.EnumerateFiles(Root, ManifestFile, new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 4 })
            .Where(f => Path.GetRelativePath(Root, f).Split(Path.DirectorySeparatorChar).Length == 5)
            .Select(Read)
            .OrderBy(m => m.Name, StringComparer.OrdinalIgnoreCase)
            .ToList();
    }

    /// <summary>The model file a pulled name runs from (the first part of a split GGUF), or null when the name is not in
    /// the store.</summary>
    public string? ModelPath(ModelName name)
    {
        var manifest = Manifest(name);
        if (manifest is null) return null;
        var gguf = manifest.Files.Select(f => f.Path).Where(p => p.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)).Order(StringComparer.Ordinal).FirstOrDefault();
        return gguf is null ? FolderOf(name) : FileOf(name, gguf);
    }

    /// <summary>Deletes a model's folder (finished or not), then the owner and repository folders left empty.</summary>
    public bool Remove(ModelName name)
    {
        var folder = FolderOf(name);
        if (!Directory.Exists(folder)) return false;
        Directory.Delete(folder, recursive: true);
        PruneEmptyParents(folder);
        return true;
    }

    public void PruneEmptyParents(string folder)
    {
        for (var dir = Path.GetDirectoryName(folder); dir is not null && dir.Length > Root.Length && Directory.Exists(dir); dir = Path.GetDirectoryName(dir))
        {
            if (Directory.EnumerateFileSystemEntries(dir).Any()) break;
            Directory.Delete(dir);
        }
    }
}
