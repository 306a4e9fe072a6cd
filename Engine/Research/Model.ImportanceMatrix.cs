using Engine.Models;
using Engine.Research;

namespace Engine;

// The importance matrix (llama-imatrix), collected with research hooks on the matrix multiplications' inputs.
public sealed partial class Model
{
    /// <summary>Computes the importance matrix llama-imatrix computes for a text: the tokens are cut into chunks of
    /// <see cref="ImportanceMatrixOptions.ContextLength"/> (the remainder is left out), each chunk runs in a fresh F32 KV
    /// cache with its first token replaced by BOS when the vocabulary adds one, and every token of every chunk adds its
    /// squared input activations to each weight matrix it passes through (see <see cref="ImportanceMatrixEntry"/>).
    /// Save the result with <see cref="ImportanceMatrix.Save"/> for llama-quantize's --imatrix.
    /// <para>Unlike llama-imatrix, which skips multiplications of fewer than 16 rows (the end of a chunk split by its batch
    /// size), every token counts; with llama-imatrix's default batch sizes and a context of 512 or a divisor of it the two
    /// agree. The output matrix is not collected (llama-imatrix collects it only with --process-output). Models with a
    /// shared expert (qwen2moe) are not supported. The collection hooks are registered for the run's own sequence only,
    /// but registering them empties the sessions' prefix cache, as any hook does.</para></summary>
    /// <param name="tokens">The text's tokens, at least 2 x ContextLength of them (as llama-imatrix requires).</param>
    /// <param name="options">Chunk length and count, dataset names, progress; null for llama-imatrix's defaults.</param>
    /// <param name="cancellationToken">Checked between chunks.</param>
    /// <exception cref="ArgumentException">Too few tokens, a chunk longer than the model's context or shorter than 1, a
    /// chunk count below 1, or a token id outside the vocabulary.</exception>
    /// <exception cref="NotSupportedException">The model has a shared expert.</exception>
    /// <exception cref="InvalidOperationException">The model produced non-finite activations.</exception>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters",
        Justification = "The overloads differ in their first parameter's type (token ids or text), so no call is ambiguous.")]
    public async Task<ImportanceMatrix> ImportanceMatrixAsync(IReadOnlyList<int> tokens, ImportanceMatrixOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ThrowIfReentered(); // before the release below is queued from the scheduler's own thread
        ObjectDisposedException.ThrowIf(_disposed, this);
        options ??= new ImportanceMatrixOptions();
        int ctx = options.ContextLength;
        ArgumentNullException.ThrowIfNull(options.Datasets, nameof(options));
        var ids = tokens.ToArray();
        int chunks = CheckedWindows(ids, ctx, options.MaxChunks, ImportanceMatrixChunks);

        var collector = new ImportanceMatrixCollector(Network);
        int? bos = Tokenizer.AddBos ? Tokenizer.Bos : null;
        var window = new int[ctx];
        var lastLogits = new float[Info.VocabularySize];
        KvCache? cache = null;
        IDisposable? hooks = null;
        try
        {
            for (int c = 0; c < chunks; c++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Array.Copy(ids, c * ctx, window, 0, ctx);
                if (bos is int b) window[0] = b;
                await RunPassAsync(network =>
                {
                    if (cancellationToken.IsCancellationRequested) return; // abandoned by cancellation before it started
                    // One cache for every chunk: each chunk rewrites positions 0.. before reading them, as a fresh one.
                    cache ??= network.CreateCache(ctx);
                    hooks ??= network.Hooks.Add(ImportanceMatrixCollector.Points, collector.Observe, cache.SequenceId);
                    network.Forward(window, 0, cache, lastLogits);
                }, cancellationToken).ConfigureAwait(false);
                cancellationToken.ThrowIfCancellationRequested();
                if (collector.FirstNonFinite() is { } broken)
                    throw new InvalidOperationException($"the input of {broken} is not finite after chunk {c + 1}: the model produced NaN or infinite activations");
                options.Progress?.Report(c + 1);
            }
        }
        finally
        {
            // Passes run in order, so this one follows any pass still using the cache and the hooks.
            try
            {
                await Scheduler.RunExclusive(_ =>
                {
                    hooks?.Dispose();
                    cache?.Dispose();
                }).ConfigureAwait(false);
            }
            catch (ObjectDisposedException) { } // the model was disposed, and with it every cache and hook
        }
        var entries = collector.Entries.OrderBy(e => e.Key, StringComparer.Ordinal)
            .Select(e => new ImportanceMatrixEntry(e.Key, e.Value.Columns, e.Value.Matrices,
                [.. e.Value.Sums.Select(v => (float)v)], [.. e.Value.Counts]))
            .ToList();
        return new ImportanceMatrix(entries, chunks, ctx, [.. options.Datasets]);
    }

    /// <summary>The importance matrix of a text (see <see cref="ImportanceMatrixAsync(IReadOnlyList{int}, ImportanceMatrixOptions?, CancellationToken)"/>),
    /// tokenized as llama-imatrix tokenizes it: with the BOS token the vocabulary asks for, control-token text as plain text.</summary>
    /// <param name="text">The text; it must come to at least 2 x ContextLength tokens.</param>
    /// <param name="options">Chunk length and count, dataset names, progress; null for llama-imatrix's defaults.</param>
    /// <param name="cancellationToken">Checked between chunks.</param>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters",
        Justification = "The overloads differ in their first parameter's type (token ids or text), so no call is ambiguous.")]
    public Task<ImportanceMatrix> ImportanceMatrixAsync(string text, ImportanceMatrixOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        return ImportanceMatrixAsync(Tokenizer.Encode(text, addSpecial: true, parseSpecial: false), options, cancellationToken);
    }
}
