using Engine.Backends;

namespace Engine.Models;

/// <summary>The mixture-of-experts feed-forward (Mixtral, Qwen-MoE):
///
///   router logits = W_router · x                        (one score per expert, per token)
///   p             = softmax(router logits)
///   chosen        = the k experts with the highest p;  weights = their p (renormalized to sum 1 if the model says so)
///   output        = Σ over chosen e of weight_e · SwiGLU_e(x)
///   (qwen2moe)   += sigmoid(w_shared_gate · x) · SwiGLU_shared(x)
///
/// A batch is processed expert by expert, not token by token: the tokens routed to expert e are gathered into
/// a sub-batch, the expert's SwiGLU runs once on it (so its weights are read once per batch), and the results
/// are added back to their tokens with their weights. Experts no token chose are never touched.</summary>
public sealed class MoeFeedForward
{
    readonly IBackend _backend;
    readonly ModelConfig _config;
    readonly SwiGluFeedForward _swiGlu;
    readonly ActivationBuffer _routerLogits, _expertInput, _expertOutput, _sharedGateLogit;

    // Routing decisions of the batch, on the host: rows x n_expert logits and probabilities, rows x k choices.
    readonly float[] _logits, _probabilities, _weights, _weightsBeforeNormalizing;
    readonly int[] _chosen;
    // The same decisions grouped by expert (a counting sort): expert e's tokens and weights are
    // _routedTokens/_routedWeights[_expertStart[e] .. _expertStart[e + 1]).
    readonly int[] _expertStart, _routedTokens, _everyToken;
    readonly float[] _routedWeights, _sharedGates;

    public MoeFeedForward(IBackend backend, ModelConfig config, SwiGluFeedForward swiGlu, int maxRows)
    {
        _backend = backend;
        _config = config;
        _swiGlu = swiGlu;
        int experts = config.ExpertCount, k = config.ExpertsPerToken, width = config.EmbeddingLength;
        _routerLogits = backend.Allocate("ffn_moe_logits", maxRows * experts);
        _expertInput = backend.Allocate("ffn_moe_input", maxRows * width);
        _expertOutput = backend.Allocate("ffn_moe_down", maxRows * width);
        _sharedGateLogit = backend.Allocate("ffn_shexp_gate_inp", maxRows);
        _logits = new float[maxRows * experts];
        _probabilities = new float[maxRows * experts];
        _chosen = new int[maxRows * k];
        _weights = new float[maxRows * k];
        _weightsBeforeNormalizing = new float[maxRows * k];
        _expertStart = new int[experts + 1];
        _routedTokens = new int[maxRows * k];
        _routedWeights = new float[maxRows * k];
        _everyToken = Enumerable.Range(0, maxRows).ToArray();
        _sharedGates = new float[maxRows];
    }

    /// <summary>output (rows x d_model) = the mixture of experts applied to x (rows x d_model, already normalized).</summary>
    public void Forward(MixtureOfExpertsWeights w, ActivationBuffer x, int rows, ActivationBuffer output, int layer, ForwardObserver? observer)
    {
        int width = _config.EmbeddingLength;
        Route(w, x, rows, layer, observer);
        GroupByExpert(rows);

        _backend.Clear(output, rows * width);
        for (int e = 0; e < w.Experts.Length; e++)
        {
            int start = _expertStart[e], count = _expertStart[e + 1] - start;
            if (count == 0) continue; // no token chose it: its weights stay unread
            var tokens = _routedTokens.AsSpan(start, count);
            _backend.GatherRows(x, tokens, width, _expertInput);
            _swiGlu.Forward(w.Experts[e], _expertInput, count, _expertOutput);
            _backend.ScatterAddRows(_expertOutput, tokens, _routedWeights.AsSpan(start, count), width, output);
        }
        Observe(observer, "ffn_moe_out", layer, output, rows, width);

        if (w.SharedExpert is { } shared) AddSharedExpert(shared, w.SharedExpertGate!, x, rows, output, layer, observer);
    }

    /// <summary>Router logits to chosen experts and weights for every token of the batch.</summary>
    void Route(MixtureOfExpertsWeights w, ActivationBuffer x, int rows, int layer, ForwardObserver? observer)
    {
        int experts = _config.ExpertCount, k = _config.ExpertsPerToken;
        _backend.MatMul(w.Router, x, rows, _routerLogits);
        var logits = _logits.AsSpan(0, rows * experts);
        _backend.Read(_routerLogits, 0, logits);
        for (int t = 0; t < rows; t++)
        {
            var probabilities = _probabilities.AsSpan(t * experts, experts);
            var chosen = _chosen.AsSpan(t * k, k);
            ExpertRouter.Probabilities(logits.Slice(t * experts, experts), _config.ExpertGating, probabilities);
            ExpertRouter.TopK(probabilities, chosen);
            ExpertRouter.Weights(probabilities, chosen, normalize: false, _weightsBeforeNormalizing.AsSpan(t * k, k));
            ExpertRouter.Weights(probabilities, chosen, _config.NormalizeExpertWeights, _weights.AsSpan(t * k, k));
        }
        if (observer is null) return;
        observer("ffn_moe_logits", layer, rows, experts, logits);
        observer("ffn_moe_probs", layer, rows, experts, _probabilities.AsSpan(0, rows * experts));
        var chosenIds = new float[rows * k];
        for (int i = 0; i < chosenIds.Length; i++) chosenIds[i] = _chosen[i];
        observer("ffn_moe_topk", layer, rows, k, chosenIds);
        observer("ffn_moe_weights", layer, rows, k, _weightsBeforeNormalizing.AsSpan(0, rows * k));
        if (_config.NormalizeExpertWeights) observer("ffn_moe_weights_norm", layer, rows, k, _weights.AsSpan(0, rows * k));
    }

    /// <summary>Regroups the (token, expert, weight) choices by expert, tokens in ascending order within each.</summary>
    void GroupByExpert(int rows)
    {
        int experts = _config.ExpertCount, k = _config.ExpertsPerToken;
        var start = _expertStart.AsSpan();
        start.Clear();
        foreach (int e in _chosen.AsSpan(0, rows * k)) start[e + 1]++;
        for (int e = 0; e < experts; e++) start[e + 1] += start[e];
        Span<int> next = stackalloc int[experts];
        start[..experts].CopyTo(next);
        for (int t = 0; t < rows; t++)
            for (int slot = 0; slot < k; slot++)
            {
                int e = _chosen[t * k + slot], at = next[e]++;
                _routedTokens[at] = t;
                _routedWeights[at] = _weights[t * k + slot];
            }
    }

    /// <summary>qwen2moe: output += sigmoid(w_gate · x) · SwiGLU_shared(x), for every token.</summary>
    void AddSharedExpert(SwiGluWeights shared, WeightMatrix gate, ActivationBuffer x, int rows, ActivationBuffer output, int layer, ForwardObserver? observer)
    {
        int width = _config.EmbeddingLength;
        _backend.MatMul(gate, x, rows, _sharedGateLogit);
        var gates = _sharedGates.AsSpan(0, rows);
        _backend.Read(_sharedGateLogit, 0, gates);
        for (int t = 0; t < rows; t++) gates[t] = 1f / (1f + MathF.Exp(-gates[t]));
        observer?.Invoke("ffn_shexp_gate", layer, rows, 1, gates);
        _swiGlu.Forward(shared, x, rows, _expertOutput);
        Observe(observer, "ffn_shexp", layer, _expertOutput, rows, width);
        _backend.ScatterAddRows(_expertOutput, _everyToken.AsSpan(0, rows), gates, width, output);
    }

    void Observe(ForwardObserver? observer, string name, int layer, ActivationBuffer buffer, int rows, int width)
    {
        if (observer is null) return;
        var copy = new float[rows * width];
        _backend.Read(buffer, 0, copy);
        observer(name, layer, rows, width, copy);
    }
}
