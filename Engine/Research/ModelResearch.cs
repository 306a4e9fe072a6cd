using Engine.Backends;
using Engine.Models;

namespace Engine;

// The research entry points, all built on the hooks (Model.AddHook): runs that record, patch, ablate and read the
// residual stream through the unembedding. Each run is a pass of its own between the sessions' steps, in KV memory of
// its own, so it neither sees nor disturbs any session.
public sealed partial class Model
{
    /// <summary>
    /// Runs prompts through the model together (batched: each step reads the weights once for all of them) and records
    /// the intermediates at `points` for each, with every position's logits: TransformerLens's <c>run_with_cache</c>.
    /// Each prompt's values equal what it gives when run alone.
    /// <code>
    /// var caches = await model.RunWithCacheAsync([model.Tokenize("The cat sat")], "l_out,kq_soft_max");
    /// caches[0].Save("run.npz");                       // np.load("run.npz")["l_out.3"]
    /// </code>
    /// </summary>
    /// <param name="prompts">Token ids of each prompt (1 to <see cref="ModelInfo.ContextLength"/> tokens).</param>
    /// <param name="points">Hook points to record, as <see cref="AddHook"/> names them.</param>
    /// <param name="cancellationToken">Abandons the run if it has not started.</param>
    /// <returns>One cache per prompt, in order.</returns>
    public async Task<IReadOnlyList<ActivationCache>> RunWithCacheAsync(IEnumerable<IReadOnlyList<int>> prompts, string points, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        return await RecordAsync(CheckedPrompts(prompts, nameof(prompts)), points, wantLogits: true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs checked prompts batched, recording `points` for each; every position's logits only when asked.</summary>
    async Task<IReadOnlyList<ActivationCache>> RecordAsync(List<int[]> sequences, string points, bool wantLogits, CancellationToken cancellationToken)
    {
        var recorders = sequences.Select(_ => new ActivationRecorder()).ToArray();
        var ids = sequences.Select(_ => SequenceIds.Next()).ToArray();
        var registrations = new List<IDisposable>();
        try
        {
            // Checked here, on the caller's thread: a bad pattern fails before anything runs.
            for (int i = 0; i < sequences.Count; i++) registrations.Add(Network.Hooks.Add(points, recorders[i].Hook, ids[i]));
            var logits = await RunSequencesAsync(sequences, ids, wantLogits, cancellationToken).ConfigureAwait(false);
            return sequences.Select((s, i) => recorders[i].ToCache(s, logits?[i])).ToList();
        }
        finally
        {
            foreach (var registration in registrations) registration.Dispose();
        }
    }

    /// <summary>Every position's logits of `tokens` (tokens x vocabulary, row-major), with whatever hooks are registered
    /// applied: the run to compare after patching or ablating.</summary>
    /// <param name="tokens">Token ids (1 to <see cref="ModelInfo.ContextLength"/>).</param>
    /// <param name="cancellationToken">Abandons the run if it has not started.</param>
    public async Task<float[]> GetLogitsAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var sequences = CheckedPrompts([tokens], nameof(tokens));
        return (await RunSequencesAsync(sequences, [SequenceIds.Next()], wantLogits: true, cancellationToken).ConfigureAwait(false))![0];
    }

    /// <summary>
    /// The logit lens: each layer's residual stream (its output, l_out) read through the model's final norm and
    /// unembedding, at every position, as if the model ended there. The last layer's equals the model's own logits.
    /// </summary>
    /// <param name="tokens">Token ids (1 to <see cref="ModelInfo.ContextLength"/>).</param>
    /// <param name="layers">Which layers (null: all). Each costs tokens x vocabulary floats of memory.</param>
    /// <param name="cancellationToken">Abandons the run if it has not started.</param>
    /// <returns>Per requested layer, in order: tokens x vocabulary logits.</returns>
    public async Task<IReadOnlyList<float[]>> LogitLensAsync(IReadOnlyList<int> tokens, IReadOnlyList<int>? layers = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var sequences = CheckedPrompts([tokens], nameof(tokens));
        var picked = (layers ?? Enumerable.Range(0, Info.LayerCount).ToList()).ToArray();
        foreach (int layer in picked)
            if ((uint)layer >= (uint)Info.LayerCount) throw new ArgumentOutOfRangeException(nameof(layers), $"layer {layer} is outside the model's {Info.LayerCount}");
        // Only the residual streams are needed: the model's own logits are not computed.
        var cache = (await RecordAsync(sequences, string.Join(',', picked.Distinct().Select(l => $"l_out.{l}")), wantLogits: false, cancellationToken).ConfigureAwait(false))[0];
        var result = new float[picked.Length][];
        await RunPassAsync(network =>
        {
            for (int i = 0; i < picked.Length; i++)
            {
                result[i] = new float[tokens.Count * Info.VocabularySize];
                network.ProjectToVocabulary(cache[$"l_out.{picked[i]}"].Values, result[i]);
            }
        }, cancellationToken).ConfigureAwait(false);
        return result;
    }

    /// <summary>Ablates attention heads of one layer in every pass while the result is held: their outputs (hook_z,
    /// kqv_out) become zero, or the given means (mean ablation; e.g. <see cref="ActivationCache.MeanOverPositions"/> of
    /// <c>kqv_out.LAYER</c> over a reference text).</summary>
    /// <param name="layer">The layer.</param>
    /// <param name="heads">Head indices.</param>
    /// <param name="means">null for zero ablation, or a kqv_out row (heads x head dimension) whose heads' parts replace theirs.</param>
    /// <returns>The registration; disposing it ends the ablation.</returns>
    public IDisposable AblateHeads(int layer, IReadOnlyList<int> heads, float[]? means = null)
    {
        ArgumentNullException.ThrowIfNull(heads);
        var c = Network.Config;
        int headDim = c.ValueHeadDim;
        foreach (int head in heads)
            if ((uint)head >= (uint)c.HeadCount) throw new ArgumentOutOfRangeException(nameof(heads), $"head {head} is outside the model's {c.HeadCount}");
        return Ablate("kqv_out", layer, heads.Select(h => (h * headDim, headDim)).ToArray(), c.HeadCount * headDim, means);
    }

    /// <summary>Ablates feed-forward neurons (the SwiGLU product, mlp.hook_post / ffn_swiglu) of one layer while the
    /// result is held: zero, or the given means.</summary>
    /// <param name="layer">The layer (a dense one).</param>
    /// <param name="neurons">Neuron indices in [0, feed-forward width).</param>
    /// <param name="means">null for zero ablation, or a ffn_swiglu row whose neurons' values replace theirs.</param>
    /// <returns>The registration; disposing it ends the ablation.</returns>
    public IDisposable AblateNeurons(int layer, IReadOnlyList<int> neurons, float[]? means = null)
    {
        ArgumentNullException.ThrowIfNull(neurons);
        int width = Network.Config.FeedForwardLength;
        foreach (int neuron in neurons)
            if ((uint)neuron >= (uint)width) throw new ArgumentOutOfRangeException(nameof(neurons), $"neuron {neuron} is outside the layer's {width}");
        return Ablate("ffn_swiglu", layer, neurons.Select(n => (n, 1)).ToArray(), width, means);
    }

    IDisposable Ablate(string point, int layer, (int Start, int Length)[] spans, int width, float[]? means)
    {
        if ((uint)layer >= (uint)Info.LayerCount) throw new ArgumentOutOfRangeException(nameof(layer), $"layer {layer} is outside the model's {Info.LayerCount}");
        if (means is not null && means.Length != width) throw new ArgumentException($"means must hold {width} values (one {point} row)", nameof(means));
        return AddHook($"{point}.{layer}", (context, values) =>
        {
            for (int row = 0; row < context.Rows; row++)
                foreach (var (start, length) in spans)
                {
                    var target = values.Slice(row * context.Width + start, length);
                    if (means is null) target.Clear();
                    else means.AsSpan(start, length).CopyTo(target);
                }
        });
    }

    /// <summary>Activation patching: while the result is held, the point `name` (<c>l_out.5</c>, <c>kqv_out.2</c>, ...)
    /// takes the values `source` recorded there, at `positions` (null: every position the source has), in every pass of
    /// every sequence. Patch a corrupted prompt's run with a clean run's cache and see how much of the clean behaviour
    /// comes back.</summary>
    /// <param name="name">A recorded row-wise activation's name (NAME.LAYER).</param>
    /// <param name="source">The cache to take the values from.</param>
    /// <param name="positions">Absolute positions to patch, or null for all the source holds.</param>
    /// <returns>The registration; disposing it ends the patch.</returns>
    public IDisposable Patch(string name, ActivationCache source, IReadOnlyList<int>? positions = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        var activation = source[name];
        if (activation.Shape.Length != 2) throw new ArgumentException($"'{name}' is not a [tokens, width] activation: patch attention patterns with a hook of your own", nameof(name));
        int available = activation.Shape[0], width = activation.Shape[1];
        var wanted = positions is null ? null : new HashSet<int>(positions);
        foreach (int position in wanted ?? [])
            if ((uint)position >= (uint)available)
                throw new ArgumentOutOfRangeException(nameof(positions), $"position {position} is not in the source (it holds {available})");
        return AddHook(name, (context, values) =>
        {
            for (int row = 0; row < context.Rows; row++)
            {
                int position = context.FirstPosition + row;
                if (position >= available || wanted is not null && !wanted.Contains(position)) continue;
                activation.Values.AsSpan(position * width, width).CopyTo(values.Slice(row * context.Width, context.Width));
            }
        });
    }

    List<int[]> CheckedPrompts(IEnumerable<IReadOnlyList<int>> prompts, string parameter)
    {
        var list = new List<int[]>();
        foreach (var prompt in prompts)
        {
            if (prompt is null || prompt.Count == 0) throw new ArgumentException($"prompt {list.Count} has no tokens", parameter);
            if (prompt.Count > Info.ContextLength)
                throw new ArgumentException($"prompt {list.Count} is {prompt.Count} tokens, more than the context of {Info.ContextLength}", parameter);
            foreach (int token in prompt) CheckToken(token, parameter);
            list.Add(prompt.ToArray());
        }
        if (list.Count == 0) throw new ArgumentException("no prompts given", parameter);
        return list;
    }

    /// <summary>Runs sequences in one batched pass with KV memory of their own; every position's logits when asked.</summary>
    async Task<float[][]?> RunSequencesAsync(List<int[]> sequences, long[] ids, bool wantLogits, CancellationToken cancellationToken)
    {
        float[][]? logits = wantLogits ? sequences.Select(s => new float[s.Length * Info.VocabularySize]).ToArray() : null;
        await RunPassAsync(network =>
        {
            int blockTokens = Llama.DefaultBlockTokens;
            var tables = new List<int[]>();
            int next = 0;
            foreach (var sequence in sequences)
            {
                int blocks = (sequence.Length + blockTokens - 1) / blockTokens;
                tables.Add(Enumerable.Range(next, blocks).ToArray());
                next += blocks;
            }
            using var store = network.CreateStore(next, KvElementType.F32, blockTokens);
            network.ForwardSequences(sequences, ids, store, tables, logits);
        }, cancellationToken).ConfigureAwait(false);
        return logits;
    }
}
