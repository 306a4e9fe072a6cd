namespace Engine.Models;

/// <summary>
/// The hooks registered on a model, by the (point, layer) they fire at. Adding or removing a hook builds a new table
/// and publishes it at once (copy on write), so the forward pass reads one consistent table per lookup without a lock,
/// and with no hook registered the pass pays a single null check per point.
/// </summary>
internal sealed class ForwardHooks(int layerCount)
{
    /// <summary>One registration: the hook, and the one sequence it is for (null: every sequence).</summary>
    internal sealed record Entry(ForwardHook Hook, long? Sequence);

    readonly Lock _gate = new();
    readonly List<(HashSet<(string, int)> Points, Entry Entry)> _registered = [];
    Dictionary<(string, int), Entry[]>? _table;
    HashSet<long> _sequences = [];
    long _version;

    /// <summary>The hooks of each (point, layer) in registration order; null while none is registered.</summary>
    public Dictionary<(string, int), Entry[]>? Table => Volatile.Read(ref _table);

    /// <summary>Changes with every registration and removal of a hook for every sequence (the scheduler then forgets the
    /// cached prompt blocks, computed under other hooks).</summary>
    public long Version => Interlocked.Read(ref _version);

    /// <summary>Registers `hook` at the points `pattern` picks (<see cref="HookPoints.Expand"/>), for one sequence or all.
    /// Disposing the result removes it; later disposals do nothing.</summary>
    public IDisposable Add(string pattern, ForwardHook hook, long? sequence = null)
    {
        ArgumentNullException.ThrowIfNull(hook);
        var points = HookPoints.Expand(pattern, layerCount);
        var entry = new Entry(hook, sequence);
        lock (_gate)
        {
            _registered.Add((points, entry));
            Publish(entry);
        }
        return new Registration(this, entry);
    }

    void Remove(Entry entry)
    {
        lock (_gate)
        {
            if (_registered.RemoveAll(r => ReferenceEquals(r.Entry, entry)) > 0) Publish(entry);
        }
    }

    void Publish(Entry changed)
    {
        Dictionary<(string, int), Entry[]>? table = null;
        if (_registered.Count > 0)
        {
            var lists = new Dictionary<(string, int), List<Entry>>();
            foreach (var (points, entry) in _registered)
                foreach (var point in points)
                {
                    if (!lists.TryGetValue(point, out var list)) lists[point] = list = [];
                    list.Add(entry);
                }
            table = lists.ToDictionary(p => p.Key, p => p.Value.ToArray());
        }
        Volatile.Write(ref _sequences, _registered.Where(r => r.Entry.Sequence is not null).Select(r => r.Entry.Sequence!.Value).ToHashSet());
        Volatile.Write(ref _table, table);
        if (changed.Sequence is null) Interlocked.Increment(ref _version);
    }

    /// <summary>True when a hook is registered for `sequence` alone: its keys and values are its own, not to be shared
    /// through the prefix cache.</summary>
    public bool HasHooksFor(long sequence) => Volatile.Read(ref _sequences).Contains(sequence);

    /// <summary>True when a hook is registered at `name` of `layer` (for any sequence).</summary>
    public bool Has(string name, int layer) => Table is { } table && table.ContainsKey((name, layer));

    sealed class Registration(ForwardHooks owner, Entry entry) : IDisposable
    {
        int _disposed;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) owner.Remove(entry);
        }
    }
}
