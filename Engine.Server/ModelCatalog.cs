namespace Engine.Server;

/// <summary>The models a server can answer with, by name. A model is loaded on its first request (its progress goes to
/// the log), kept while requests use it and for the keep-alive after the last, then unloaded. Loading is one at a
/// time per model; requests that arrive meanwhile wait for the same load.</summary>
internal sealed partial class ModelCatalog : IDisposable
{
    readonly ServerOptions _options;
    readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    /// <summary>One load at a time across all models, so the room made for one is not taken by another loading beside it.</summary>
    readonly SemaphoreSlim _loadGate = new(1, 1);
    readonly Timer _sweeper;
    bool _disposed;

    public ModelCatalog(ServerOptions options)
    {
        _options = options;
        foreach (var path in options.Models)
        {
            var name = NameOf(path);
            if (!_entries.TryAdd(name, new Entry(name, path, MakeRoom, _loadGate, () => _disposed)))
                throw new ArgumentException($"two models are named '{name}' ({_entries[name].Path} and {path}): rename one of the files");
        }
        _sweeper = new Timer(_ => UnloadExpired(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    /// <summary>A file's name without extension, a folder's name.</summary>
    public static string NameOf(string path)
    {
        var trimmed = path.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar);
        return Directory.Exists(trimmed) ? Path.GetFileName(trimmed) : Path.GetFileNameWithoutExtension(trimmed);
    }

    public IReadOnlyList<Entry> All { get { lock (_entries) return [.. _entries.Values.OrderBy(e => e.Name, StringComparer.Ordinal)]; } }

    /// <summary>The entry named <paramref name="name"/>; Ollama's ":latest" suffix is accepted. Unknown names are a 404
    /// that lists the served ones.</summary>
    public Entry Find(string name)
    {
        var key = name.EndsWith(":latest", StringComparison.Ordinal) ? name[..^7] : name;
        lock (_entries)
            if (_entries.TryGetValue(key, out var entry)) return entry;
        throw ApiError.NotFound($"model '{name}' is not served here; served models: {string.Join(", ", All.Select(e => e.Name))}", "model");
    }

    /// <summary>The loaded model, loading it first if needed; dispose the lease when the request is done.</summary>
    public async Task<Lease> AcquireAsync(string name, TimeSpan? keepAlive, CancellationToken cancellationToken)
    {
        var entry = Find(name);
        var model = await entry.LoadAsync(_options, cancellationToken).ConfigureAwait(false);
        return new Lease(entry, model, keepAlive ?? _options.KeepAlive);
    }

    /// <summary>Before <paramref name="loading"/> is loaded: unloads idle models, least recently used first, until the
    /// loaded models and the new one fit the memory limit. Models in use are never unloaded; if they alone exceed the
    /// limit, the load goes ahead and the log says so.</summary>
    void MakeRoom(Entry loading)
    {
        long limit = _options.ModelMemoryLimit ?? (long)(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes * 0.9);
        long need = loading.FileBytes;
        while (true)
        {
            var loaded = All.Where(e => e != loading && e.Loaded is not null).ToList();
            long used = loaded.Sum(e => e.Loaded?.BytesInMemory ?? 0);
            if (used + need <= limit) return;
            var idle = loaded.Where(e => e.Idle).OrderBy(e => e.LastUsed).FirstOrDefault();
            if (idle is null)
            {
                _options.Log?.WriteLine($"engine serve: loading {loading.Name} ({need >> 20} MiB) beside models in use ({used >> 20} MiB) exceeds the memory limit ({limit >> 20} MiB)");
                return;
            }
            _options.Log?.WriteLine($"engine serve: unloading {idle.Name} to make room for {loading.Name}");
            idle.UnloadIfIdle();
        }
    }

    void UnloadExpired()
    {
        // A timer callback that throws would end the process: an unload that fails is logged instead.
        try { foreach (var entry in All) entry.UnloadIfExpired(_options.Log); }
        catch (Exception e) { _options.Log?.WriteLine($"engine serve: unloading failed: {e.Message}"); }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _sweeper.Dispose();
        foreach (var entry in All) entry.Unload();
    }

    /// <summary>Bytes a model takes on disk before it is loaded (what the memory limit is checked against and the Ollama
    /// API reports): a file, with the other parts of a split GGUF named as llama.cpp's gguf-split names them
    /// (PREFIX-00001-of-0000N.gguf is the first of N), or a folder's files.</summary>
    internal static long DiskBytes(string path)
    {
        if (Directory.Exists(path)) return new DirectoryInfo(path).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
        if (!File.Exists(path)) return 0;
        long bytes = new FileInfo(path).Length;
        if (SplitFirstPart().Match(path) is { Success: true } split)
        {
            int count = int.Parse(split.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
            for (int part = 2; part <= count; part++)
            {
                var file = new FileInfo($"{split.Groups[1].Value}-{part:00000}-of-{split.Groups[2].Value}.gguf");
                if (file.Exists) bytes += file.Length;
            }
        }
        return bytes;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^(.*)-00001-of-(\d{5})\.gguf$")]
    private static partial System.Text.RegularExpressions.Regex SplitFirstPart();

    /// <summary>One served model: its name and path, and the loaded model while it is loaded.</summary>
    internal sealed class Entry(string name, string path, Action<Entry> makeRoom, SemaphoreSlim loadGate, Func<bool> catalogDisposed)
    {
        readonly SemaphoreSlim _loading = loadGate;
        readonly object _gate = new();
        Model? _model;
        int _users;
        DateTime _expiresAt = DateTime.MaxValue;

        public string Name { get; } = name;
        public string Path { get; } = path;
        public long FileBytes { get; } = DiskBytes(path);
        public DateTime Modified { get; } = File.Exists(path) ? File.GetLastWriteTimeUtc(path) : Directory.GetLastWriteTimeUtc(path);

        public Model? Loaded { get { lock (_gate) return _model; } }
        /// <summary>True while the model is being loaded.</summary>
        public bool Loading => Volatile.Read(ref _loadingNow) == 1;
        int _loadingNow;
        public DateTime ExpiresAt { get { lock (_gate) return _expiresAt; } }
        /// <summary>Loaded and no request is using it.</summary>
        public bool Idle { get { lock (_gate) return _model is not null && _users == 0; } }
        /// <summary>When a request last finished with it.</summary>
        public DateTime LastUsed { get { lock (_gate) return _lastUsed; } }
        DateTime _lastUsed;

        public async Task<Model> LoadAsync(ServerOptions options, CancellationToken cancellationToken)
        {
            lock (_gate)
                if (_model is { } ready) { _users++; return ready; }
            await _loading.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                lock (_gate)
                    if (_model is { } ready) { _users++; return ready; }
                makeRoom(this);
                options.Log?.WriteLine($"engine serve: loading {Name} from {Path}");
                var progress = new LogProgress(options.Log, Name);
                Model model;
                Volatile.Write(ref _loadingNow, 1);
                try { model = await Model.LoadAsync(Path, options.LoadOptions with { Progress = progress }, cancellationToken).ConfigureAwait(false); }
                finally { Volatile.Write(ref _loadingNow, 0); }
                options.Log?.WriteLine($"engine serve: {Name} ready: {model.Info.Architecture}, {Parameters(model.Info.ParameterCount)} parameters, " +
                    $"context {model.Info.ContextLength} tokens, KV cache {model.Info.KvCacheCapacity} tokens ({model.Info.KvCacheType})");
                lock (_gate)
                {
                    // The server stopped while this model loaded: it must not outlive the catalog.
                    if (catalogDisposed()) { model.Dispose(); throw new ObjectDisposedException(nameof(ModelCatalog)); }
                    _model = model; _users++; return model;
                }
            }
            finally { _loading.Release(); }
        }

        /// <summary>A request is done with the model: it stays loaded for keepAlive (negative: until the server stops).</summary>
        public void Release(TimeSpan keepAlive)
        {
            lock (_gate)
            {
                _users--;
                _lastUsed = DateTime.UtcNow;
                var until = keepAlive < TimeSpan.Zero ? DateTime.MaxValue : DateTime.UtcNow + keepAlive;
                // The last request's keep-alive decides, as in Ollama (a request with 0 unloads the model when idle).
                _expiresAt = keepAlive == TimeSpan.Zero ? DateTime.UtcNow : until;
            }
        }

        public void UnloadIfExpired(TextWriter? log)
        {
            Model? unload = null;
            lock (_gate)
                if (_model is not null && _users == 0 && DateTime.UtcNow >= _expiresAt)
                {
                    unload = _model;
                    _model = null;
                    _expiresAt = DateTime.MaxValue;
                }
            if (unload is null) return;
            log?.WriteLine($"engine serve: unloading {Name} (keep-alive expired)");
            unload.Dispose();
        }

        /// <summary>Unloads the model if no request uses it.</summary>
        public void UnloadIfIdle()
        {
            Model? unload = null;
            lock (_gate)
                if (_model is not null && _users == 0)
                {
                    unload = _model;
                    _model = null;
                    _expiresAt = DateTime.MaxValue;
                }
            unload?.Dispose();
        }

        public void Unload()
        {
            Model? unload;
            lock (_gate) { unload = _model; _model = null; }
            unload?.Dispose();
        }
    }

    /// <summary>A parameter count as people write it: 1.54B, 494M, 260K.</summary>
    public static string Parameters(long count) => count >= 1_000_000_000 ? $"{count / 1e9:0.##}B" : count >= 1_000_000 ? $"{count / 1e6:0.#}M" : $"{count / 1e3:0}K";

    /// <summary>A request's hold on a loaded model.</summary>
    internal sealed class Lease(Entry entry, Model model, TimeSpan keepAlive) : IDisposable
    {
        int _released;
        public Entry Entry { get; } = entry;
        public Model Model { get; } = model;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) Entry.Release(keepAlive);
        }
    }

    sealed class LogProgress(TextWriter? log, string name) : IProgress<ModelLoadProgress>
    {
        public void Report(ModelLoadProgress value) => log?.WriteLine($"engine serve: {name}: {value.Message}");
    }
}
