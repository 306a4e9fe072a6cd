using System.Collections;

namespace Engine;

/// <summary>
/// The intermediates of one sequence's forward pass, by name: <c>NAME.LAYER</c> for the blocks' points (<c>l_out.3</c>,
/// <c>kq_soft_max.0</c>) and <c>NAME</c> outside them (<c>inp_embd</c>, <c>result_norm</c>). Row-wise points are
/// [tokens, width]; attention scores and patterns are [heads, tokens, tokens] (query position, key position). Made by
/// <see cref="Model.RunWithCacheAsync"/> or by recording a session (<see cref="Record"/>); saved for Python with
/// <see cref="Save"/> (.npz for numpy, .safetensors for torch).
/// </summary>
public sealed class ActivationCache : IReadOnlyDictionary<string, Activation>
{
    readonly Dictionary<string, Activation> _values;

    internal ActivationCache(IReadOnlyList<int> tokens, Dictionary<string, Activation> values, float[]? logits)
    {
        Tokens = tokens;
        _values = values;
        Logits = logits;
    }

    /// <summary>The tokens of the sequence, one per row.</summary>
    public IReadOnlyList<int> Tokens { get; }

    /// <summary>Every position's logits (tokens x vocabulary), when the run computed them; else null.</summary>
    public float[]? Logits { get; }

    /// <summary>The activation `name` (e.g. <c>l_out.3</c>).</summary>
    /// <exception cref="KeyNotFoundException">Nothing of that name was recorded; the message lists what was.</exception>
    public Activation this[string key] => _values.TryGetValue(key, out var value) ? value
        : throw new KeyNotFoundException($"no activation '{key}' was recorded; recorded: {string.Join(", ", _values.Keys.Order(StringComparer.Ordinal))}");

    /// <summary>The names recorded.</summary>
    public IEnumerable<string> Keys => _values.Keys;
    /// <summary>The activations recorded.</summary>
    public IEnumerable<Activation> Values => _values.Values;
    /// <summary>How many activations were recorded.</summary>
    public int Count => _values.Count;
    /// <summary>True when `key` was recorded.</summary>
    public bool ContainsKey(string key) => _values.ContainsKey(key);
    /// <summary>The activation `key`, if recorded.</summary>
    public bool TryGetValue(string key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out Activation value) => _values.TryGetValue(key, out value);
    /// <summary>The activations by name.</summary>
    public IEnumerator<KeyValuePair<string, Activation>> GetEnumerator() => _values.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>The mean over positions of a [tokens, width] activation (mean ablation replaces values with it).</summary>
    public float[] MeanOverPositions(string key)
    {
        var activation = this[key];
        if (activation.Shape.Length != 2) throw new ArgumentException($"'{key}' is not [tokens, width]", nameof(key));
        int rows = activation.Shape[0], width = activation.Shape[1];
        var sum = new double[width];
        for (int t = 0; t < rows; t++)
            for (int i = 0; i < width; i++) sum[i] += activation.Values[t * width + i];
        return sum.Select(v => (float)(v / rows)).ToArray();
    }

    /// <summary>
    /// Writes the activations to `path`: numpy's .npz (one float32 array per name, <c>np.load(path)["l_out.3"]</c>) or
    /// .safetensors (<c>safetensors.numpy.load_file</c>, or torch), chosen by the extension; the token ids go with them as
    /// the int32 array <c>tokens</c>, and the logits as <c>logits</c> when computed. Written to a temporary file and
    /// renamed, so an interrupted save leaves no partial file.
    /// </summary>
    /// <exception cref="ArgumentException">The extension is neither .npz nor .safetensors.</exception>
    public void Save(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var arrays = new List<Research.NamedArray>
        {
            new("tokens", [Tokens.Count], null, Tokens.ToArray()),
        };
        foreach (var (name, activation) in _values.OrderBy(p => p.Key, StringComparer.Ordinal))
            arrays.Add(new(name, activation.Shape, activation.Values, null));
        if (Logits is not null) arrays.Add(new("logits", [Tokens.Count, Logits.Length / Math.Max(1, Tokens.Count)], Logits, null));
        var extension = System.IO.Path.GetExtension(path).ToLowerInvariant();
        Research.ArrayFiles.WriteAtomically(path, stream =>
        {
            switch (extension)
            {
                case ".npz": Research.ArrayFiles.WriteNpz(stream, arrays); break;
                case ".safetensors": Research.ArrayFiles.WriteSafetensors(stream, arrays); break;
                default: throw new ArgumentException($"'{path}': save as .npz (numpy) or .safetensors", nameof(path));
            }
        });
    }

    /// <summary>Starts recording a session's intermediates at `points` (as <see cref="Model.AddHook"/> names them), over
    /// everything it processes from now on: prompts and every decode step. Dispose the recorder to stop; its
    /// <see cref="ActivationRecorder.ToCache(IReadOnlyList{int})"/> gives the cache by absolute position.</summary>
    public static ActivationRecorder Record(Session session, string points)
    {
        ArgumentNullException.ThrowIfNull(session);
        var recorder = new ActivationRecorder();
        recorder.Attach(session.AddHook(points, recorder.Hook));
        return recorder;
    }
}
