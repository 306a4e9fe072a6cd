using System.Numerics.Tensors;

namespace Engine.Sampling;

/// <summary>
/// Turns one row of logits into a token id. The stages run in llama.cpp's default order:
/// penalties → (temperature 0: argmax) → top-k → top-p → min-p → temperature → softmax → draw.
/// Top-p and min-p therefore see temperature-1 probabilities, as in llama.cpp.
///
/// Every buffer is allocated once in the constructor: <see cref="Sample"/> allocates nothing.
/// The RNG is owned by the sampler and seeded explicitly (llama2.c style), so the same seed and the same logits
/// give the same tokens. One sampler serves one generation stream; it is not thread-safe.
/// </summary>
internal sealed partial class Sampler
{
    readonly SamplerOptions _options;
    readonly int _vocabSize;
    SamplerRng _rng;

    // Scratch, all of vocabulary length. _work holds the penalized logits; the candidate list is
    // (_candIds, _candLogits)[0..n); _tmp* receives partial selections; _probs the final distribution.
    readonly float[] _work;
    readonly int[] _counts;
    readonly int[] _identity;
    readonly int[] _candIds;
    readonly float[] _candLogits;
    readonly int[] _tmpIds;
    readonly float[] _tmpLogits;
    readonly float[] _probs;
    readonly Engine.Grammar.GrammarMatcher? _grammar;

    /// <param name="options">Validated here; top-k above the vocabulary is clamped.</param>
    /// <param name="vocabSize">Length of every logits row passed to <see cref="Sample"/>.</param>
    /// <exception cref="InvalidSamplingOptionsException">An option is out of range.</exception>
    public Sampler(SamplerOptions options, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Validate(vocabSize);
        _vocabSize = vocabSize;
        Seed = options.Seed ?? SamplerRng.OsSeed();
        _rng = new SamplerRng(Seed);

        _work = new float[vocabSize];
        _counts = new int[vocabSize];
        _identity = new int[vocabSize];
        for (var i = 0; i < vocabSize; i++) _identity[i] = i;
        _candIds = new int[vocabSize];
        _candLogits = new float[vocabSize];
        _tmpIds = new int[vocabSize];
        _tmpLogits = new float[vocabSize];
        _probs = new float[vocabSize];
        _grammar = options.Grammar?.CreateMatcher();
    }

    /// <summary>This stream's position in <see cref="SamplerOptions.Grammar"/>; null without a grammar.</summary>
    public Engine.Grammar.GrammarMatcher? Grammar => _grammar;

    /// <summary>The options in effect (after validation and clamping).</summary>
    public SamplerOptions Options => _options;

    /// <summary>The seed in use: the requested one, or the one drawn from the OS. Log it to replay a run.</summary>
    public ulong Seed { get; }

    /// <summary>Picks the next token.</summary>
    /// <param name="logits">One row of model output, vocabulary length. Not modified.</param>
    /// <param name="recentTokens">Tokens generated/consumed so far (oldest first); the last
    /// <see cref="SamplerOptions.PenaltyLastN"/> are penalized.</param>
    /// <exception cref="NonFiniteLogitsException">A logit is NaN or +inf, or all are -inf (checklist F13).</exception>
    /// <exception cref="GrammarException">With a grammar: no token is allowed, or every allowed token has a
    /// -inf logit. The grammar advances on the returned token.</exception>
    public int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> recentTokens)
    {
        if (logits.Length != _vocabSize)
            throw new ArgumentException($"logits length {logits.Length} != vocabulary size {_vocabSize}", nameof(logits));

        var work = _work.AsSpan();
        logits.CopyTo(work);
        ThrowIfNotSampleable(work);
        if (_grammar is null) return SampleFrom(work, recentTokens);

        _grammar.Apply(work);
        if (float.IsNegativeInfinity(TensorPrimitives.Max((ReadOnlySpan<float>)work)))
            throw new GrammarException("every token the grammar allows has a -inf logit: no token can be sampled");
        int token = SampleFrom(work, recentTokens);
        _grammar.Accept(token);
        return token;
    }

    int SampleFrom(Span<float> work, ReadOnlySpan<int> recentTokens)
    {
        Penalties.Apply(work, recentTokens, _options, _counts);

        if (_options.Temperature == 0f) return Argmax(work);

        int n;
        bool sorted;
        if (_options.TopK > 0 && _options.TopK < _vocabSize)
        {
            n = TopSelector.Select(_identity, work, _options.TopK, _candIds, _candLogits);
            sorted = true;
        }
        else
        {
            _identity.CopyTo(_candIds, 0);
            work.CopyTo(_candLogits);
            n = _vocabSize;
            sorted = false;
        }

        if (_options.TopP < 1f)
        {
            n = ApplyTopP(n, sorted);
            sorted = sorted || n == 1; // the bucketed path leaves only its last part sorted
        }
        if (_options.MinP > 0f) n = ApplyMinP(n, sorted);

        var probs = _probs.AsSpan(0, n);
        SoftmaxWithTemperature(_candLogits.AsSpan(0, n), probs, _options.Temperature);
        return Draw(probs);
    }

    /// <summary>Keeps the smallest set of best candidates whose probability reaches TopP (ties by lower id).
    /// Sorted candidates (after top-k) are cut directly; unsorted ones go through <see cref="NucleusByBuckets"/>
    /// so that the whole vocabulary is never sorted.</summary>
    int ApplyTopP(int n, bool sorted)
    {
        var logits = _candLogits.AsSpan(0, n);
        var max = sorted ? logits[0] : TensorPrimitives.Max(logits);
        // Unnormalized probabilities at temperature 1: exp(x - max) never overflows.
        var weights = _probs.AsSpan(0, n);
        TensorPrimitives.Subtract(logits, max, weights);
        TensorPrimitives.Exp(weights, weights);

        if (!sorted) return NucleusByBuckets(n, max);

        double total = TensorPrimitives.Sum((ReadOnlySpan<float>)weights);
        var cut = NucleusLength(weights, 0, _options.TopP * total);
        return cut > 0 ? cut : n; // rounding kept the sum below TopP: keep everything
    }

    const int TopPBuckets = 256;
    const float TopPBucketRange = 32f; // logits more than 32 below the max (p < 1e-14 relative) share the last bucket

    /// <summary>
    /// Top-p without a full sort: candidates are histogrammed by distance below the max logit; walking the buckets
    /// best-first finds the one where the cumulative probability crosses TopP. Everything in better buckets is in
    /// the nucleus, everything in worse ones is out, and only the crossing bucket (usually a handful of tokens) is
    /// sorted to find the exact cut. Result order: better buckets in vocabulary order, then the crossing bucket best-first.
    /// </summary>
    int NucleusByBuckets(int n, float max)
    {
        var ids = _candIds.AsSpan(0, n);
        var logits = _candLogits.AsSpan(0, n);
        var weights = _probs.AsSpan(0, n);

        Span<double> mass = stackalloc double[TopPBuckets];
        mass.Clear();
        for (var i = 0; i < n; i++) mass[BucketOf(logits[i], max)] += weights[i];

        double total = 0;
        foreach (var m in mass) total += m;
        var target = _options.TopP * total;

        double before = 0; // mass of the buckets fully inside the nucleus
        var crossing = 0;
        while (crossing < TopPBuckets && before + mass[crossing] < target) before += mass[crossing++];
        if (crossing == TopPBuckets) return n; // rounding: keep everything

        // Compact better buckets to the front (in place: reads never fall behind writes); park the crossing bucket.
        var kept = 0;
        var parked = 0;
        for (var i = 0; i < n; i++)
        {
            var b = BucketOf(logits[i], max);
            if (b < crossing)
            {
                ids[kept] = ids[i];
                logits[kept] = logits[i];
                kept++;
            }
            else if (b == crossing)
            {
                _tmpIds[parked] = ids[i];
                _tmpLogits[parked] = logits[i];
                parked++;
            }
        }

        // Sort the crossing bucket into place after the kept ones and cut it where the nucleus is complete.
        TopSelector.Select(_tmpIds.AsSpan(0, parked), _tmpLogits.AsSpan(0, parked), parked,
            _candIds.AsSpan(kept, parked), _candLogits.AsSpan(kept, parked));
        var tail = _probs.AsSpan(kept, parked);
        TensorPrimitives.Subtract(_candLogits.AsSpan(kept, parked), max, tail);
        TensorPrimitives.Exp(tail, tail);
        var cut = NucleusLength(tail, before, target);
        return kept + (cut > 0 ? cut : parked);
    }

    static int BucketOf(float logit, float max)
    {
        var below = max - logit; // >= 0; +inf for masked tokens
        return below >= TopPBucketRange ? TopPBuckets - 1 : (int)(below * (TopPBuckets / TopPBucketRange));
    }

    /// <summary>Length of the best-first prefix of <paramref name="weights"/> after which the cumulative weight,
    /// starting from <paramref name="start"/>, reaches <paramref name="target"/>; 0 if it never does.</summary>
    static int NucleusLength(ReadOnlySpan<float> weights, double start, double target)
    {
        var cumulative = start;
        for (var i = 0; i < weights.Length; i++)
        {
            cumulative += weights[i];
            if (cumulative >= target) return i + 1;
        }
        return 0;
    }

    /// <summary>Keeps candidates with p ≥ MinP·p_max, i.e. logit ≥ max + ln(MinP); preserves order. The best
    /// candidate always passes, so at least one remains.</summary>
    int ApplyMinP(int n, bool sorted)
    {
        var ids = _candIds.AsSpan(0, n);
        var logits = _candLogits.AsSpan(0, n);
        var max = sorted ? logits[0] : TensorPrimitives.Max(logits);
        var threshold = max + MathF.Log(_options.MinP);
        var kept = 0;
        for (var i = 0; i < n; i++)
        {
            if (!(logits[i] >= threshold)) continue;
            ids[kept] = ids[i];
            logits[kept] = logits[i];
            kept++;
        }
        return kept;
    }

    /// <summary>Inverse-CDF draw. Float rounding can leave the total a hair below 1; a draw past the end goes to
    /// the last candidate with non-zero probability, never to a masked (-inf) one.</summary>
    int Draw(ReadOnlySpan<float> probs)
    {
        var r = _rng.NextFloat();
        var cdf = 0f;
        var lastNonZero = 0;
        for (var i = 0; i < probs.Length; i++)
        {
            if (probs[i] <= 0f) continue;
            cdf += probs[i];
            lastNonZero = i;
            if (r < cdf) return _candIds[i];
        }
        return _candIds[lastNonZero];
    }

    /// <summary>NaN or +inf anywhere, or nothing but -inf, means the forward pass went wrong (checklist F13).</summary>
    static void ThrowIfNotSampleable(ReadOnlySpan<float> logits)
    {
        var max = TensorPrimitives.Max(logits); // NaN when any value is NaN
        if (float.IsFinite(max)) return;
        if (float.IsNegativeInfinity(max))
            throw new NonFiniteLogitsException(0, max, "every logit is -inf: no token can be sampled");
        for (var i = 0; i < logits.Length; i++)
            if (float.IsNaN(logits[i]) || float.IsPositiveInfinity(logits[i]))
                throw new NonFiniteLogitsException(i, logits[i]);
        throw new NonFiniteLogitsException(0, max);
    }
}
