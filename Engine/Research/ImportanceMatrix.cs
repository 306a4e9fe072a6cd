using Engine.Formats.Gguf;

namespace Engine;

/// <summary>How <see cref="Model.ImportanceMatrixAsync(IReadOnlyList{int}, ImportanceMatrixOptions?, System.Threading.CancellationToken)"/>
/// reads a text (llama-imatrix's defaults).</summary>
public sealed record ImportanceMatrixOptions
{
    /// <summary>Tokens per chunk (llama-imatrix's -c, default 512): each chunk runs in a fresh cache with its first token
    /// replaced by BOS when the vocabulary adds one. At most the model's <see cref="ModelInfo.ContextLength"/>.</summary>
    public int ContextLength { get; init; } = 512;

    /// <summary>Chunks to read from the start of the text (llama-imatrix's --chunks); null for every whole chunk.</summary>
    public int? MaxChunks { get; init; }

    /// <summary>The names of the texts read, stored in the file's imatrix.datasets (llama-imatrix stores the -f path).</summary>
    public IReadOnlyList<string> Datasets { get; init; } = [];

    /// <summary>Told the number of chunks done after each one; null for none.</summary>
    public IProgress<int>? Progress { get; init; }
}

/// <summary>One weight matrix's importance: the sum over the tokens that went into it of each input column's squared
/// activation, and the token counts (one row and count per expert for a MoE layer's stacked expert weights).</summary>
public sealed class ImportanceMatrixEntry
{
    internal ImportanceMatrixEntry(string name, int columns, int matrices, float[] squaredSums, long[] counts)
    {
        Name = name;
        Columns = columns;
        Matrices = matrices;
        SquaredSums = squaredSums;
        Counts = counts;
    }

    /// <summary>The weight's GGUF tensor name, e.g. "blk.0.attn_q.weight" or "blk.1.ffn_down_exps.weight".</summary>
    public string Name { get; }
    /// <summary>Input columns of the matrix (its row length).</summary>
    public int Columns { get; }
    /// <summary>1, or the number of experts of a stacked expert weight.</summary>
    public int Matrices { get; }
    /// <summary>Matrices x Columns sums of squared inputs, row-major (llama-imatrix's "in_sum2").</summary>
    public IReadOnlyList<float> SquaredSums { get; }
    /// <summary>Tokens that went into each matrix (for experts: the tokens routed to each).</summary>
    public IReadOnlyList<long> Counts { get; }
}

/// <summary>An importance matrix as llama-imatrix computes it, for llama-quantize's --imatrix: which input columns of
/// each weight carry the most activation energy, so quantization can spend its precision there.</summary>
public sealed class ImportanceMatrix
{
    internal ImportanceMatrix(IReadOnlyList<ImportanceMatrixEntry> entries, int chunks, int chunkSize, IReadOnlyList<string> datasets)
    {
        Entries = entries;
        ChunkCount = chunks;
        ChunkSize = chunkSize;
        Datasets = datasets;
    }

    /// <summary>One entry per weight matrix, sorted by name (ordinal), as llama-imatrix stores them.</summary>
    public IReadOnlyList<ImportanceMatrixEntry> Entries { get; }
    /// <summary>Chunks read.</summary>
    public int ChunkCount { get; }
    /// <summary>Tokens per chunk.</summary>
    public int ChunkSize { get; }
    /// <summary>The names of the texts read.</summary>
    public IReadOnlyList<string> Datasets { get; }

    /// <summary>Writes the file llama-imatrix writes by default (GGUF): general.type "imatrix", imatrix.datasets,
    /// imatrix.chunk_count and imatrix.chunk_size, and per weight (in name order) the F32 tensors "NAME.in_sum2"
    /// [Columns, Matrices] and "NAME.counts" [1, Matrices] (trailing dimensions of 1 dropped, as ggml writes them).
    /// The file is written to a temporary name and renamed into place.</summary>
    /// <param name="path">The file to create or replace; its folder must exist.</param>
    /// <exception cref="IOException">The file cannot be written.</exception>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var writer = new GgufWriter()
            .AddMetadata("general.type", "imatrix")
            .AddMetadata("imatrix.datasets", Datasets.ToArray())
            .AddMetadata("imatrix.chunk_count", (uint)ChunkCount)
            .AddMetadata("imatrix.chunk_size", (uint)ChunkSize);
        foreach (var entry in Entries)
        {
            var sums = entry.SquaredSums.ToArray();
            var counts = entry.Counts.Select(c => (float)c).ToArray();
            writer.AddTensor(entry.Name + ".in_sum2", Formats.GgmlType.F32,
                entry.Matrices == 1 ? [entry.Columns] : [entry.Columns, entry.Matrices], Bytes(sums));
            writer.AddTensor(entry.Name + ".counts", Formats.GgmlType.F32, entry.Matrices == 1 ? [1] : [1, entry.Matrices], Bytes(counts));
        }
        writer.WriteTo(path);
    }

    static byte[] Bytes(float[] values)
    {
        var bytes = new byte[values.Length * sizeof(float)];
        for (int i = 0; i < values.Length; i++)
            System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), values[i]);
        return bytes;
    }
}
