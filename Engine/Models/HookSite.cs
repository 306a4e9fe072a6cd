using System.Numerics.Tensors;
using Engine.Backends;

namespace Engine.Models;

/// <summary>
/// Where one stage's forward pass meets the hooks (and the read-only observer): each hook point calls
/// <see cref="Point"/> with the buffer that holds the intermediate, and the site hands every sequence's rows to the hooks
/// registered there, writing back what they changed. It exists only while a hook or observer is attached: without them
/// the pass never reaches it. Host scratch is grown on first use and kept.
/// </summary>
internal sealed class HookSite(Llama model, StageActivations stage)
{
    int _layer;
    ForwardBatch _batch = null!;
    float[] _values = [], _queries = [], _keys = [], _valuesOfKeys = [], _scores = [], _output = [];

    IBackend Backend => stage.Backend;

    public void Begin(int layer, ForwardBatch batch)
    {
        _layer = layer;
        _batch = batch;
    }

    /// <summary>The intermediate `name` in `buffer`, one row of `width` values per row of the batch: the observer gets a
    /// copy, each sequence's hooks get its rows and may change them.</summary>
    public void Point(string name, ActivationBuffer buffer, int width)
    {
        var batch = _batch;
        if (model.Observer is { } observer)
        {
            var copy = new float[batch.Rows * width];
            Backend.Read(buffer, 0, copy);
            observer(name, _layer, batch.Rows, width, copy);
        }
        if (Entries(name) is not { } entries) return;
        bool writeBack = !HookPoints.ReadOnly.Contains(name);
        for (int s = 0; s < batch.Sequences; s++)
        {
            if (!AnyFor(entries, batch.SequenceIds[s])) continue;
            int first = batch.SequenceFirstRow[s], rows = batch.SequenceRowCount[s];
            var values = Grow(ref _values, rows * width);
            Backend.Read(buffer, first * width, values);
            Invoke(entries, new HookContext(name, _layer, batch.SequenceIds[s], batch.Positions[first], rows, width, 0, batch.Phases[s]), values);
            if (writeBack) Backend.Write(buffer, first * width, values);
        }
    }

    /// <summary>An intermediate of the rows that compute logits only (result_norm, result_output): `buffer` holds one row
    /// per entry of batch.LogitRows, in that order; each sequence's run of them goes to its hooks.</summary>
    public void LogitRowsPoint(string name, ActivationBuffer buffer, int width)
    {
        var batch = _batch;
        var logitRows = batch.LogitRows;
        if (model.Observer is { } observer)
        {
            var copy = new float[logitRows.Length * width];
            Backend.Read(buffer, 0, copy);
            observer(name, _layer, logitRows.Length, width, copy);
        }
        if (Entries(name) is not { } entries) return;
        for (int i = 0; i < logitRows.Length;)
        {
            int s = batch.RowSequence[logitRows[i]], n = 1;
            while (i + n < logitRows.Length && batch.RowSequence[logitRows[i + n]] == s) n++;
            if (AnyFor(entries, batch.SequenceIds[s]))
            {
                var values = Grow(ref _values, n * width);
                Backend.Read(buffer, i * width, values);
                Invoke(entries, new HookContext(name, _layer, batch.SequenceIds[s], batch.Positions[logitRows[i]], n, width, 0, batch.Phases[s]), values);
                Backend.Write(buffer, i * width, values);
            }
            i += n;
        }
    }

    /// <summary>True when someone looks at `name` here: values that must be derived for it (the MoE routing as llama.cpp
    /// names it) are computed only then.</summary>
    public bool Wants(string name) => model.Observer is not null || model.Hooks.Has(name, _layer);

    /// <summary>Values derived on the host for hooks (batch.Rows x width): shown to the observer and hooks, not read back.</summary>
    public void Derived(string name, float[] values, int width)
    {
        var batch = _batch;
        model.Observer?.Invoke(name, _layer, batch.Rows, width, values);
        if (Entries(name) is not { } entries) return;
        for (int s = 0; s < batch.Sequences; s++)
        {
            if (!AnyFor(entries, batch.SequenceIds[s])) continue;
            int first = batch.SequenceFirstRow[s], rows = batch.SequenceRowCount[s];
            var copy = Grow(ref _values, rows * width);
            values.AsSpan(first * width, rows * width).CopyTo(copy);
            Invoke(entries, new HookContext(name, _layer, batch.SequenceIds[s], batch.Positions[first], rows, width, 0, batch.Phases[s]), copy);
        }
    }

    /// <summary>True when a hook wants this layer's attention scores or pattern: the layer then forms them explicitly.</summary>
    public bool WantsAttentionScores() => model.Hooks.Has("kq", _layer) || model.Hooks.Has("kq_soft_max", _layer);

    /// <summary>
    /// Attention with its scores formed explicitly, for the hooks on "kq" and "kq_soft_max" (the fast path never forms
    /// them: it streams blocks of keys through an online softmax). Per sequence and head, as the paper writes it:
    ///
    ///   kq          = Q · Kᵀ                                   (rows x keys; keys after a row's position masked to -∞)
    ///   kq_soft_max = softmax(kq / √d_head)                    (each row sums to 1)
    ///   kqv_out     = kq_soft_max · V
    ///
    /// A hook that changes kq changes the pattern; one that changes kq_soft_max changes what is summed.
    /// Grouped-query attention: query head h reads key/value head h / (heads / kv_heads).
    /// </summary>
    public void AttentionWithScores(KvBlockPool pool, int cacheLayer)
    {
        var c = model.Config;
        var batch = _batch;
        int heads = c.HeadCount, kvHeads = c.KvHeadCount, headDim = c.HeadDim, valueDim = c.ValueHeadDim;
        int group = heads / kvHeads, queryWidth = c.QueryWidth, keyWidth = c.KeyWidth, valueWidth = c.ValueWidth;
        float scale = 1f / MathF.Sqrt(headDim);
        var scoreHooks = Entries("kq");
        var patternHooks = Entries("kq_soft_max");
        for (int s = 0; s < batch.Sequences; s++)
        {
            int first = batch.SequenceFirstRow[s], rows = batch.SequenceRowCount[s];
            int firstPosition = batch.Positions[first], keys = firstPosition + rows;
            long id = batch.SequenceIds[s];
            var q = Grow(ref _queries, rows * queryWidth);
            Backend.Read(stage.Q, first * queryWidth, q);
            var k = Grow(ref _keys, keys * keyWidth);
            var v = Grow(ref _valuesOfKeys, keys * valueWidth);
            Backend.ReadKv(pool, cacheLayer, batch.BlockTableOfRow(first), keys, k, v);

            var scores = Grow(ref _scores, heads * rows * keys);
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < rows; i++)
                {
                    var query = q.Slice(i * queryWidth + h * headDim, headDim);
                    var row = scores.Slice((h * rows + i) * keys, keys);
                    int visible = firstPosition + i + 1;
                    for (int j = 0; j < visible; j++)
                        row[j] = TensorPrimitives.Dot(query, k.Slice(j * keyWidth + h / group * headDim, headDim));
                    row[visible..].Fill(float.NegativeInfinity);
                }
            var context = new HookContext("kq", _layer, id, firstPosition, rows, keys, heads, batch.Phases[s]);
            if (scoreHooks is not null && AnyFor(scoreHooks, id)) Invoke(scoreHooks, context, scores);

            for (int r = 0; r < heads * rows; r++) Softmax(scores.Slice(r * keys, keys), scale);
            if (patternHooks is not null && AnyFor(patternHooks, id)) Invoke(patternHooks, context with { Name = "kq_soft_max" }, scores);

            var output = Grow(ref _output, rows * heads * valueDim);
            output.Clear();
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < rows; i++)
                {
                    var sum = output.Slice(i * heads * valueDim + h * valueDim, valueDim);
                    var weights = scores.Slice((h * rows + i) * keys, keys);
                    for (int j = 0; j < keys; j++)
                        if (weights[j] != 0) TensorPrimitives.MultiplyAdd(v.Slice(j * valueWidth + h / group * valueDim, valueDim), weights[j], sum, sum);
                }
            Backend.Write(stage.Attention, first * heads * valueDim, output);
        }
    }

    /// <summary>row = softmax(row * scale), with -∞ entries (masked) giving exactly 0.</summary>
    static void Softmax(Span<float> row, float scale)
    {
        float max = TensorPrimitives.Max(row);
        double sum = 0;
        for (int j = 0; j < row.Length; j++)
        {
            float e = float.IsNegativeInfinity(row[j]) ? 0f : MathF.Exp((row[j] - max) * scale);
            row[j] = e;
            sum += e;
        }
        TensorPrimitives.Multiply(row, (float)(1 / sum), row);
    }

    ForwardHooks.Entry[]? Entries(string name) =>
        model.Hooks.Table is { } table && table.TryGetValue((name, _layer), out var entries) ? entries : null;

    static bool AnyFor(ForwardHooks.Entry[] entries, long sequence)
    {
        foreach (var entry in entries)
            if (entry.Sequence is null || entry.Sequence == sequence) return true;
        return false;
    }

    static void Invoke(ForwardHooks.Entry[] entries, HookContext context, Span<float> values)
    {
        foreach (var entry in entries)
            if (entry.Sequence is null || entry.Sequence == context.Sequence) entry.Hook(context, values);
    }

    static Span<float> Grow(ref float[] array, int length)
    {
        if (array.Length < length) array = new float[Math.Max(length, array.Length * 2)];
        return array.AsSpan(0, length);
    }
}
