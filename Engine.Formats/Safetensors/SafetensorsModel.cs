namespace Engine.Formats.Safetensors;

/// <summary>The weights of a Hugging Face checkpoint: a folder holding either a sharded set
/// (<c>model.safetensors.index.json</c> + shards) or a single <c>model.safetensors</c> (or exactly one
/// <c>*.safetensors</c>), or a path to one such file. Each shard is opened once; the index and the shards must
/// agree exactly (checklist S8): every shard the index names exists, every tensor of a shard is listed for that
/// shard, every listed tensor is in its shard, and no tensor is in two shards. Tensor names are looked up across all
/// shards. Disposing the model closes every shard.</summary>
public sealed class SafetensorsModel : IDisposable
{
    const string SingleFileName = "model.safetensors";

    readonly SafetensorsFile[] _shards;
    readonly Dictionary<string, SafetensorsFile> _owner;

    /// <summary>The model folder, as a full path (the file's folder when a file was opened).</summary>
    public string Directory { get; }
    /// <summary>The index, for a sharded checkpoint; null for a single file.</summary>
    public SafetensorsIndex? Index { get; }
    /// <summary>The open shards, in the index's (ordinal) shard order; one file for a single-file checkpoint.</summary>
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

    /// <summary>Opens a model folder, an index file (any path ending in .json), or a single .safetensors file. A folder
    /// is read through its <c>model.safetensors.index.json</c> when it has one, else its <c>model.safetensors</c>, else
    /// its only <c>*.safetensors</c> file. Shards are opened and validated in full before this returns.</summary>
    /// <param name="path">The folder or file.</param>
    /// <exception cref="ModelFormatException">Nothing is at the path, or a folder has no weights or several files and no
    /// index (kind Io); the index is invalid or names an unsafe shard (UnsafePath); the index and shards disagree
    /// (ShardMismatch); or a shard breaks a rule of the format. The error names the file concerned.</exception>
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

    /// <summary>True when some shard holds a tensor of this exact name.</summary>
    /// <param name="name">The tensor name, as in the checkpoint ("model.layers.0.mlp.up_proj.weight").</param>
    public bool Contains(string name) => _owner.ContainsKey(name);

    /// <summary>The shard holding a tensor.</summary>
    /// <param name="name">The tensor name, as in the checkpoint.</param>
    /// <exception cref="ModelFormatException">No shard holds the tensor (kind <see cref="FormatErrorKind.MissingKey"/>).</exception>
    public SafetensorsFile ShardOf(string name) =>
        _owner.TryGetValue(name, out var shard) ? shard
            : throw new ModelFormatException(FormatErrorKind.MissingKey, "no such tensor in the model", name, filePath: Directory);

    /// <summary>The header entry for a tensor, from whichever shard holds it.</summary>
    /// <param name="name">The tensor name, as in the checkpoint.</param>
    /// <exception cref="ModelFormatException">No shard holds the tensor (kind <see cref="FormatErrorKind.MissingKey"/>).</exception>
    public SafetensorsTensorInfo GetInfo(string name) => ShardOf(name).GetInfo(name);

    /// <summary>A zero-copy view in ggml order (see <see cref="SafetensorsFile.GetView"/>).</summary>
    /// <param name="name">The tensor name, as in the checkpoint.</param>
    /// <exception cref="ModelFormatException">No shard holds the tensor (kind MissingKey), or its dtype has no ggml
    /// type (kind UnknownTensorType).</exception>
    public TensorView GetView(string name) => ShardOf(name).GetView(name);

    /// <summary>As <see cref="GetView"/>, but false when no shard holds the tensor; a present tensor of a dtype with
    /// no ggml type still throws.</summary>
    /// <param name="name">The tensor name, as in the checkpoint.</param>
    /// <param name="view">The view when the tensor exists; null otherwise.</param>
    /// <exception cref="ModelFormatException">The tensor's dtype has no ggml type (kind UnknownTensorType).</exception>
    public bool TryGetView(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out TensorView? view)
    {
        view = null;
        return _owner.TryGetValue(name, out var shard) && shard.TryGetView(name, out view);
    }

    /// <summary>Closes every shard; views handed out stop working (see <see cref="SafetensorsFile.Dispose"/>).</summary>
    public void Dispose()
    {
        foreach (var shard in _shards) shard.Dispose();
    }

    static ModelFormatException Mismatch(string message, string? tensor, string? file) =>
        new(FormatErrorKind.ShardMismatch, message, tensor, filePath: file);
}
