namespace Engine.Formats.Safetensors;

/// <summary>The weights of a Hugging Face checkpoint: a folder holding either a sharded set
/// (<c>model.safetensors.index.json</c> + shards) or a single <c>model.safetensors</c> (or exactly one
/// <c>*.safetensors</c>), or a path to one such file. Each shard is opened once; the index and the shards must
/// agree exactly (checklist S8). Tensor names are looked up across all shards.</summary>
public sealed class SafetensorsModel : IDisposable
{
    const string SingleFileName = "model.safetensors";

    readonly SafetensorsFile[] _shards;
    readonly Dictionary<string, SafetensorsFile> _owner;

    /// <summary>The model folder.</summary>
    public string Directory { get; }
    /// <summary>The index, for a sharded checkpoint; null for a single file.</summary>
    public SafetensorsIndex? Index { get; }
    public IReadOnlyList<SafetensorsFile> Shards => _shards;
    /// <summary>Every tensor: shard by shard (in the index's shard order), each in data-offset order.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors { get; }

    SafetensorsModel(string directory, SafetensorsIndex? index, SafetensorsFile[] shards, Dictionary<string, SafetensorsFile> owner)
    {
        Directory = directory;
        Index = index;
        _shards = shards;
        _owner = owner;
        Tensors = shards.SelectMany(s => s.Tensors).ToArray();
    }

    /// <summary>Opens a model folder, an index file, or a single .safetensors file.</summary>
    public static SafetensorsModel Open(string path)
    {
        string full = Path.GetFullPath(path);
        if (File.Exists(full))
        {
            string dir = Path.GetDirectoryName(full)!;
            return full.EndsWith(".json", StringComparison.OrdinalIgnoreCase)
                ? OpenSharded(dir, SafetensorsIndex.Load(full))
                : OpenSingle(dir, full);
        }
        if (!System.IO.Directory.Exists(full))
            throw new ModelFormatException(FormatErrorKind.Io, "no such file or folder", filePath: full);

        string indexPath = Path.Combine(full, SafetensorsIndex.FileName);
        if (File.Exists(indexPath)) return OpenSharded(full, SafetensorsIndex.Load(indexPath));
        string single = Path.Combine(full, SingleFileName);
        if (File.Exists(single)) return OpenSingle(full, single);
        var candidates = System.IO.Directory.GetFiles(full, "*.safetensors");
        if (candidates.Length == 1) return OpenSingle(full, candidates[0]);
        throw new ModelFormatException(FormatErrorKind.Io, candidates.Length == 0
            ? $"folder has neither {SafetensorsIndex.FileName} nor any .safetensors file"
            : $"folder has {candidates.Length} .safetensors files and no {SafetensorsIndex.FileName} to say which to use",
            filePath: full);
    }

    static SafetensorsModel OpenSingle(string directory, string file)
    {
        var shard = SafetensorsFile.Open(file);
        var owner = shard.Tensors.ToDictionary(t => t.Name, _ => shard, StringComparer.Ordinal);
        return new SafetensorsModel(directory, null, [shard], owner);
    }

    static SafetensorsModel OpenSharded(string directory, SafetensorsIndex index)
    {
        var shards = new List<SafetensorsFile>(index.ShardNames.Count);
        try
        {
            var owner = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            var shardName = new Dictionary<SafetensorsFile, string>();
            foreach (string name in index.ShardNames)
            {
                // Re-checked here so the path opened is exactly the canonical one the S7 check approved.
                string path = SafetensorsIndex.CheckShardName(name, directory, null, index.Path);
                if (!File.Exists(path))
                    throw Mismatch($"the index lists shard '{name}', which does not exist", null, index.Path);
                var shard = SafetensorsFile.Open(path);
                shards.Add(shard);
                shardName[shard] = name;
                foreach (var t in shard.Tensors)
                {
                    if (owner.TryGetValue(t.Name, out var first))
                        throw Mismatch($"tensor is present in two shards, '{shardName[first]}' and '{name}'", t.Name, path);
                    owner[t.Name] = shard;
                }
            }
            // S8, both directions: every tensor of a shard is listed for that shard, and every index entry is found there.
            foreach (var (tensor, shard) in owner)
            {
                string holder = shardName[shard];
                if (!index.WeightMap.TryGetValue(tensor, out string? listed))
                    throw Mismatch($"shard '{holder}' holds a tensor that is not in the index", tensor, shard.FilePath);
                if (listed != holder)
                    throw Mismatch($"the index places the tensor in '{listed}', but it is in '{holder}'", tensor, index.Path);
            }
            foreach (var (tensor, listed) in index.WeightMap)
                if (!owner.ContainsKey(tensor))
                    throw Mismatch($"the index places the tensor in '{listed}', which lacks it", tensor, index.Path);
            return new SafetensorsModel(directory, index, shards.ToArray(), owner);
        }
        catch
        {
            foreach (var s in shards) s.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => _owner.ContainsKey(name);

    /// <summary>The shard holding a tensor; a missing name is a MissingKey error naming it.</summary>
    public SafetensorsFile ShardOf(string name) =>
        _owner.TryGetValue(name, out var shard) ? shard
            : throw new ModelFormatException(FormatErrorKind.MissingKey, "no such tensor in the model", name, filePath: Directory);

    public SafetensorsTensorInfo GetInfo(string name) => ShardOf(name).GetInfo(name);

    /// <summary>A zero-copy view in ggml order (see <see cref="SafetensorsFile.GetView"/>).</summary>
    public TensorView GetView(string name) => ShardOf(name).GetView(name);

    public bool TryGetView(string name, out TensorView? view)
    {
        view = null;
        return _owner.TryGetValue(name, out var shard) && shard.TryGetView(name, out view);
    }

    public void Dispose()
    {
        foreach (var shard in _shards) shard.Dispose();
    }

    static ModelFormatException Mismatch(string message, string? tensor, string? file) =>
        new(FormatErrorKind.ShardMismatch, message, tensor, filePath: file);
}
