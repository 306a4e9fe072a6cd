using Engine.Formats;

namespace Engine.Quantization;

/// <summary>
/// The importance of each input column of each weight, as llama-quantize derives it from an importance matrix file
/// (tools/quantize/quantize.cpp, load_imatrix and prepare_imatrix): per matrix (per expert for stacked experts) the sum
/// of squared activations divided by the tokens counted, or 1 where none were; in the legacy format the stored values
/// divided by the call count. The metadata keys llama-quantize writes are kept with them.
/// </summary>
internal sealed class ImportanceWeights
{
    readonly Dictionary<string, float[]> _values;

    ImportanceWeights(Dictionary<string, float[]> values, string? dataset, int chunkCount)
    {
        _values = values;
        Dataset = dataset;
        ChunkCount = chunkCount;
    }

    /// <summary>Entries left after the include and exclude filters (quantize.imatrix.entries_count).</summary>
    public int Count => _values.Count;
    /// <summary>The first dataset named in the file (quantize.imatrix.dataset), or null.</summary>
    public string? Dataset { get; }
    /// <summary>Chunks the matrix was computed on (quantize.imatrix.chunks_count, written when positive).</summary>
    public int ChunkCount { get; }

    /// <summary>The importance values of a weight (experts one after the other, Columns each), or null.</summary>
    public float[]? Find(string name) => _values.GetValueOrDefault(name);

    /// <summary>Reads the file and derives the importance as llama-quantize does. include and exclude are
    /// llama-quantize's --include-weights / --exclude-weights: entries whose name contains any of the strings are
    /// kept (include) or dropped (exclude); at most one of them may be non-empty.</summary>
    /// <exception cref="QuantizationException">A GGUF file without the imatrix metadata, or a non-finite importance
    /// (kind <see cref="QuantizationErrorKind.BadImatrix"/>).</exception>
    /// <exception cref="ModelFormatException">The file is corrupt or truncated.</exception>
    public static ImportanceWeights Load(string path, IReadOnlyList<string> include, IReadOnlyList<string> exclude)
    {
        if (include.Count > 0 && exclude.Count > 0)
            throw new ArgumentException("give the weights to include or the weights to exclude, not both");
        var file = ImportanceMatrixFile.Load(path);
        if (!file.IsLegacy && !file.HasMetadata)
            throw new QuantizationException(QuantizationErrorKind.BadImatrix,
                $"{path}: missing imatrix metadata (imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size); make it again with llama-imatrix or `engine imatrix`");

        var values = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var (name, entry) in file.Entries)
        {
            if (exclude.Any(s => name.Contains(s, StringComparison.Ordinal))) continue;
            if (include.Count > 0 && !include.Any(s => name.Contains(s, StringComparison.Ordinal))) continue;
            values[name] = file.IsLegacy ? FromLegacy(entry) : FromSums(entry);
        }
        // llama_model_quantize rejects the whole matrix when any value is not finite (a diverged imatrix run).
        foreach (var (name, v) in values)
            foreach (float f in v)
                if (!float.IsFinite(f))
                    throw new QuantizationException(QuantizationErrorKind.BadImatrix,
                        $"{path}: the importance of {name} contains the non-finite value {f}; the importance matrix is unusable");
        return new ImportanceWeights(values, file.Datasets.Count > 0 ? file.Datasets[0] : null, file.ChunkCount);
    }

    /// <summary>sums / count per matrix, in float; 1 for a matrix no token reached (an expert never routed to).</summary>
    static float[] FromSums(ImportanceMatrixFile.Entry entry)
    {
        int columns = entry.Columns;
        var e = new float[entry.Sums.Length];
        for (int j = 0; j < entry.Counts.Length; j++)
        {
            float count = entry.Counts[j];
            for (int i = 0; i < columns; i++)
                e[j * columns + i] = count > 0f ? entry.Sums[j * columns + i] / count : 1f;
        }
        return e;
    }

    /// <summary>Legacy values are mean squares times the call count: divided by it again (kept when it is not positive).</summary>
    static float[] FromLegacy(ImportanceMatrixFile.Entry entry)
    {
        long calls = entry.Counts[0];
        var e = new float[entry.Sums.Length];
        for (int i = 0; i < e.Length; i++) e[i] = calls > 0 ? entry.Sums[i] / calls : entry.Sums[i];
        return e;
    }
}
