namespace Engine;

/// <summary>
/// Records the intermediates a hook sees for one sequence, by absolute position, so rows that arrive over several steps
/// (prompt chunks, then one row per decode step) are laid out as one [tokens, width] array, and attention patterns as one
/// [heads, tokens, tokens] array. Made by <see cref="ActivationCache.Record"/>; dispose it to stop recording.
/// </summary>
public sealed class ActivationRecorder : IDisposable
{
    readonly Lock _gate = new();
    // Per name: each recorded position's row (row-wise points), or each query position's [heads][keys] rows (attention).
    readonly Dictionary<string, SortedDictionary<int, float[]>> _rows = new(StringComparer.Ordinal);
    readonly Dictionary<string, int> _heads = new(StringComparer.Ordinal);
    readonly SortedDictionary<int, int> _tokens = [];
    IDisposable? _registration;

    internal ActivationRecorder() { }

    internal void Attach(IDisposable registration) => _registration = registration;

    internal static string KeyOf(HookContext context) => context.Layer < 0 ? context.Name : $"{context.Name}.{context.Layer}";

    /// <summary>The hook that records (one sequence's calls).</summary>
    internal void Hook(HookContext context, Span<float> values)
    {
        var key = KeyOf(context);
        lock (_gate)
        {
            if (!_rows.TryGetValue(key, out var rows)) _rows[key] = rows = [];
            if (context.Heads > 0)
            {
                _heads[key] = context.Heads;
                // [heads, rows, keys]: keep each query position's heads x keys.
                for (int i = 0; i < context.Rows; i++)
                {
                    var row = new float[context.Heads * context.Width];
                    for (int h = 0; h < context.Heads; h++)
                        values.Slice((h * context.Rows + i) * context.Width, context.Width).CopyTo(row.AsSpan(h * context.Width));
                    rows[context.FirstPosition + i] = row;
                }
            }
            else
                for (int i = 0; i < context.Rows; i++)
                    rows[context.FirstPosition + i] = values.Slice(i * context.Width, context.Width).ToArray();
        }
    }

    /// <summary>Stops recording (the values recorded so far stay).</summary>
    public void Dispose() => _registration?.Dispose();

    /// <summary>The recorded values as a cache. Each array covers positions 0 to the last recorded one; positions never
    /// seen (a prompt prefix served from the prefix cache, or recorded before the recorder) are zero.</summary>
    /// <param name="tokens">The sequence's tokens, stored with the cache (e.g. <see cref="Session.Tokens"/>).</param>
    public ActivationCache ToCache(IReadOnlyList<int> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        lock (_gate) return new ActivationCache(tokens, Build(), null);
    }

    internal ActivationCache ToCache(IReadOnlyList<int> tokens, float[]? logits)
    {
        lock (_gate) return new ActivationCache(tokens, Build(), logits);
    }

    Dictionary<string, Activation> Build()
    {
        var result = new Dictionary<string, Activation>(StringComparer.Ordinal);
        foreach (var (key, rows) in _rows)
        {
            if (rows.Count == 0) continue;
            int positions = rows.Keys.Max() + 1;
            if (_heads.TryGetValue(key, out int heads))
            {
                // Query position p's row holds heads x (its call's keys); the array is [heads, positions, positions].
                var values = new float[heads * positions * positions];
                foreach (var (p, row) in rows)
                {
                    int keys = row.Length / heads;
                    for (int h = 0; h < heads; h++)
                        row.AsSpan(h * keys, Math.Min(keys, positions)).CopyTo(values.AsSpan((h * positions + p) * positions));
                }
                result[key] = new Activation([heads, positions, positions], values);
            }
            else
            {
                int width = rows.First().Value.Length;
                var values = new float[positions * width];
                foreach (var (p, row) in rows) row.CopyTo(values, p * width);
                result[key] = new Activation([positions, width], values);
            }
        }
        return result;
    }
}
