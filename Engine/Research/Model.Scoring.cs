using Engine.Models;
using Engine.Research;

namespace Engine;

// Scoring text: per-token log-probabilities and llama-perplexity's perplexity. Both run as passes that have the model to
// themselves, in F32 KV caches of their own, so they neither depend on nor disturb the sessions.
public sealed partial class Model
{
    /// <summary>The natural-log probability of each token after the first given the tokens before it, with its rank and
    /// the model's first choice. The tokens run in an F32 KV cache of their own, in slices of the model's batch, so memory
    /// is a slice's logits, not the whole sequence's.</summary>
    /// <param name="tokens">Token ids, 2 or more, within the vocabulary; at most <see cref="ModelInfo.ContextLength"/>.</param>
    /// <param name="cancellationToken">Cancels the request if it has not started.</param>
    /// <exception cref="ArgumentException">Fewer than 2 tokens, or more than the context.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A token id is outside the vocabulary.</exception>
    /// <exception cref="NonFiniteLogitsException">The model produced a NaN or infinite logit.</exception>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters",
        Justification = "The overloads differ in their first parameter's type (token ids or text), so no call is ambiguous.")]
    public async Task<TokenLogProbabilities> ScoreAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var ids = tokens.ToArray();
        if (ids.Length < 2)
            throw new ArgumentException($"scoring needs at least 2 tokens (the first is only context), got {ids.Length}", nameof(tokens));
        if (ids.Length > Info.ContextLength)
            throw new ArgumentException($"{ids.Length} tokens are more than the context of {Info.ContextLength}: split them or load the model with a larger ContextLength", nameof(tokens));
        CheckTokens(ids, nameof(tokens));
        var scores = new TokenScore[ids.Length - 1];
        await RunPassAsync(network =>
        {
            using var cache = network.CreateCache(ids.Length - 1);
            new TokenScorer(network).Score(ids, 0, cache, scores);
        }, cancellationToken).ConfigureAwait(false);
        return new TokenLogProbabilities(ids, scores);
    }

    /// <summary>The per-token log-probabilities of a text (see <see cref="ScoreAsync(IReadOnlyList{int}, CancellationToken)"/>),
    /// tokenized with the BOS token the vocabulary asks for and control-token text read as plain text.</summary>
    /// <param name="text">The text; with BOS it must come to 2 tokens or more.</param>
    /// <param name="cancellationToken">Cancels the request if it has not started.</param>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters",
        Justification = "The overloads differ in their first parameter's type (token ids or text), so no call is ambiguous.")]
    public Task<TokenLogProbabilities> ScoreAsync(string text, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        return ScoreAsync(Tokenizer.Encode(text, addSpecial: true, parseSpecial: false), cancellationToken);
    }

    /// <summary>Perplexity by llama-perplexity's method: the tokens are cut into windows of
    /// <see cref="PerplexityOptions.ContextLength"/> (the remainder is left out), each window runs in a fresh cache with
    /// its first token replaced by BOS when the vocabulary adds one, and the second half of each window is scored (the
    /// logits after token i predict token i + 1 for i from ContextLength / 2 to ContextLength - 2). The result is
    /// exp(mean negative log-likelihood), summed in double. The KV cache is F32 (llama-perplexity's default is F16,
    /// which moves the result in about the fourth digit).</summary>
    /// <param name="tokens">The text's tokens, at least 2 x ContextLength of them (as llama-perplexity requires).</param>
    /// <param name="options">Window length, window count, progress; null for llama-perplexity's defaults (512, all).</param>
    /// <param name="cancellationToken">Checked between windows.</param>
    /// <exception cref="ArgumentException">Too few tokens, a window longer than the model's context or shorter than 3, a
    /// window count below 1, or a token id outside the vocabulary.</exception>
    /// <exception cref="NonFiniteLogitsException">The model produced a NaN or infinite logit.</exception>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters",
        Justification = "The overloads differ in their first parameter's type (token ids or text), so no call is ambiguous.")]
    public async Task<PerplexityResult> PerplexityAsync(IReadOnlyList<int> tokens, PerplexityOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ThrowIfReentered(); // before the cache's release below is queued from the scheduler's own thread
        ObjectDisposedException.ThrowIf(_disposed, this);
        options ??= new PerplexityOptions();
        int ctx = options.ContextLength;
        var ids = tokens.ToArray();
        int chunks = CheckedWindows(ids, ctx, options.MaxChunks, PerplexityWindows);

        int? bos = Tokenizer.AddBos ? Tokenizer.Bos : null;
        int first = ctx / 2;
        var window = new int[ctx];
        var scores = new TokenScore[ctx - first - 1];
        var running = new double[chunks];
        double nll = 0, nll2 = 0;
        int count = 0;
        TokenScorer? scorer = null;
        KvCache? cache = null;
        try
        {
            for (int c = 0; c < chunks; c++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Array.Copy(ids, c * ctx, window, 0, ctx);
                if (bos is int b) window[0] = b;
                await RunPassAsync(network =>
                {
                    // A pass abandoned by cancellation may still start after the wait was given up: it then does nothing.
                    if (cancellationToken.IsCancellationRequested) return;
                    scorer ??= new TokenScorer(network);
                    // One cache for every window: each window rewrites positions 0.. before reading them, as a fresh one.
                    cache ??= network.CreateCache(ctx - 1);
                    scorer.Score(window, first, cache, scores);
                }, cancellationToken).ConfigureAwait(false);
                cancellationToken.ThrowIfCancellationRequested();
                foreach (var s in scores)
                {
                    nll -= s.LogProbability;
                    nll2 += s.LogProbability * s.LogProbability;
                }
                count += scores.Length;
                running[c] = Math.Exp(nll / count);
                options.Progress?.Report(new PerplexityProgress(c + 1, chunks, running[c]));
            }
        }
        finally
        {
            // Passes run in order, so this one follows any pass still using the cache.
            try { await Scheduler.RunExclusive(_ => cache?.Dispose()).ConfigureAwait(false); }
            catch (ObjectDisposedException) { } // the model was disposed, and with it every cache
        }
        double mean = nll / count, ppl = Math.Exp(mean);
        double variance = nll2 / count - mean * mean;
        return new PerplexityResult
        {
            Perplexity = ppl,
            Uncertainty = variance > 0 && count > 1 ? Math.Sqrt(variance / (count - 1)) * ppl : 0,
            MeanNegativeLogLikelihood = mean,
            ScoredTokens = count,
            Chunks = chunks,
            ContextLength = ctx,
            TextTokens = ids.Length,
            RunningPerplexity = running,
        };
    }

    /// <summary>Perplexity of a text (see <see cref="PerplexityAsync(IReadOnlyList{int}, PerplexityOptions?, CancellationToken)"/>),
    /// tokenized as llama-perplexity tokenizes it: with the BOS token the vocabulary asks for, control-token text read as
    /// plain text.</summary>
    /// <param name="text">The text; it must come to at least 2 x ContextLength tokens.</param>
    /// <param name="options">Window length, window count, progress; null for llama-perplexity's defaults (512, all).</param>
    /// <param name="cancellationToken">Checked between windows.</param>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters",
        Justification = "The overloads differ in their first parameter's type (token ids or text), so no call is ambiguous.")]
    public Task<PerplexityResult> PerplexityAsync(string text, PerplexityOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        return PerplexityAsync(Tokenizer.Encode(text, addSpecial: true, parseSpecial: false), options, cancellationToken);
    }
}
