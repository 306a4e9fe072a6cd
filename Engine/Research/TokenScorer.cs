using Engine.Models;

namespace Engine.Research;

/// <summary>Feeds one sequence through the model in slices of at most <see cref="Llama.MaxBatch"/> rows and scores each
/// next token from the logits as they come out, so memory is a slice's rows x vocab, never the whole text's.</summary>
internal sealed class TokenScorer
{
    readonly Llama _network;
    readonly float[] _logits;
    ForwardBatch? _batch;

    public TokenScorer(Llama network)
    {
        _network = network;
        _logits = new float[network.MaxBatch * network.Config.VocabSize];
    }

    /// <summary>Feeds tokens[0 .. n-1) at positions 0.. into `cache` (the last token predicts nothing, so it is not fed)
    /// and scores the prediction of tokens[i+1] from the logits after tokens[0..i], for every i in [from, n-1):
    /// scores[i - from]. Rows before `from` are fed without computing their logits.</summary>
    public void Score(ReadOnlySpan<int> tokens, int from, KvCache cache, Span<TokenScore> scores)
    {
        int fed = tokens.Length - 1;
        if (from < 0 || from >= fed) throw new ArgumentOutOfRangeException(nameof(from), $"scoring from row {from} of {tokens.Length} tokens");
        if (scores.Length != fed - from) throw new ArgumentException($"scores must hold {fed - from} values", nameof(scores));
        if (fed > cache.ContextLength) throw new ContextOverflowException(cache.ContextLength, 0, fed);
        int vocab = _network.Config.VocabSize;
        if (_batch is null || _batch.BlockTokens != cache.Store.BlockTokens) _batch = new ForwardBatch(cache.Store.BlockTokens);

        // The unscored prefix in whole slices, then the scored rows, so no slice computes logits nobody reads.
        for (int done = 0; done < fed;)
        {
            bool scored = done >= from;
            int rows = Math.Min(_network.MaxBatch, (scored ? fed : from) - done);
            _batch.Clear();
            _batch.Add(tokens.Slice(done, rows), done, cache.BlockTable, scored ? LogitsWanted.Every : LogitsWanted.None, cache.SequenceId);
            _network.Forward(_batch, cache.Store, scored ? _logits.AsSpan(0, rows * vocab) : []);
            if (scored)
                for (int r = 0; r < rows; r++)
                {
                    int i = done + r;
                    scores[i - from] = Measure(_logits.AsSpan(r * vocab, vocab), i + 1, tokens[i + 1]);
                }
            done += rows;
        }
    }

    /// <summary>The natural-log probability of `token` under the softmax of `logits` (max-subtracted, summed in double),
    /// its rank among the vocabulary and the most likely token.</summary>
    /// <exception cref="NonFiniteLogitsException">A logit is NaN or +infinity.</exception>
    internal static TokenScore Measure(ReadOnlySpan<float> logits, int position, int token)
    {
        int top = 0;
        for (int v = 0; v < logits.Length; v++)
        {
            float x = logits[v];
            if (float.IsNaN(x) || float.IsPositiveInfinity(x))
                throw new NonFiniteLogitsException(v, x, $"logit of token {v} after position {position - 1} is {x}: the model produced non-finite output (NaN/+inf), so no probability can be given");
            if (x > logits[top]) top = v;
        }
        if (float.IsNegativeInfinity(logits[top]))
            throw new NonFiniteLogitsException(top, logits[top], $"every logit after position {position - 1} is -inf: no token has a probability");
        double max = logits[top];
        double sum = 0;
        int rank = 0;
        float target = logits[token];
        for (int v = 0; v < logits.Length; v++)
        {
            sum += Math.Exp(logits[v] - max);
            if (logits[v] > target) rank++;
        }
        double logSum = Math.Log(sum);
        return new TokenScore(position, token, target - max - logSum, rank, top, -logSum);
    }
}
