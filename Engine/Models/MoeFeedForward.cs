using Engine.Backends;

namespace Engine.Models;

/// <summary>The mixture-of-experts feed-forward (Mixtral, Qwen-MoE), step by step as llama.cpp's build_moe_ffn:
///
///   router logits = W_router · x                        (one score per expert, per token)
///   p             = softmax(router logits)              (or sigmoid)
///   chosen        = the k experts with the highest p;  weights = their p (renormalized to sum 1 if the model says so)
///   h_slot        = silu(W_gate[chosen] · x) ⊙ (W_up[chosen] · x)     for each of the token's k slots
///   output        = Σ over slots of weight_slot · (W_down[chosen] · h_slot)
///   (qwen2moe)   += sigmoid(w_shared_gate · x) · SwiGLU_shared(x)
///
/// The routing stays in the backend (a GPU keeps it in device memory; nothing goes through the host), and each
/// expert matmul multiplies every slot by its own chosen expert's matrix. How is the backend's affair: the CPU
/// gathers each expert's tokens into one sub-batch so its weights are read once per batch; experts no token
/// chose are never read.</summary>
internal sealed class MoeFeedForward
{
    readonly IBackend _backend;
    readonly ModelConfig _config;
    readonly SwiGluFeedForward _swiGlu;
    readonly ExpertRouting _routing;
    // Per token: n_expert logits and probabilities. Per slot (token x k): the gate, up, SwiGLU and down rows.
    readonly ActivationBuffer _routerLogits, _probabilities, _gate, _up, _hidden, _down, _sharedOutput, _sharedGateLogit;

    public MoeFeedForward(IBackend backend, ModelConfig config, SwiGluFeedForward swiGlu, int maxRows)
    {
        _backend = backend;
        _config = config;
        _swiGlu = swiGlu;
        int experts = config.ExpertCount, slots = maxRows * config.ExpertsPerToken;
        int width = config.EmbeddingLength, hidden = config.ExpertFeedForwardLength;
        _routing = backend.CreateExpertRouting(ExpertRoutingShape.Of(config, maxRows));
        _routerLogits = backend.Allocate("ffn_moe_logits", maxRows * experts);
        _probabilities = backend.Allocate("ffn_moe_probs", maxRows * experts);
        _gate = backend.Allocate("ffn_moe_gate", slots * hidden);
        _up = backend.Allocate("ffn_moe_up", slots * hidden);
        _hidden = backend.Allocate("ffn_moe_swiglu", slots * hidden);
        _down = backend.Allocate("ffn_moe_down", slots * width);
        _sharedOutput = backend.Allocate("ffn_shexp", maxRows * width);
        _sharedGateLogit = backend.Allocate("ffn_shexp_gate_inp", maxRows);
    }

    /// <summary>output (rows x d_model) = the mixture of experts applied to x (rows x d_model, already normalized).</summary>
    public void Forward(MixtureOfExpertsWeights w, ActivationBuffer x, int rows, ActivationBuffer output, int layer, ForwardObserver? observer)
    {
        var be = _backend;
        int width = _config.EmbeddingLength, slots = rows * _config.ExpertsPerToken, hidden = w.HiddenWidth;

        be.MatMul(w.Router, x, rows, _routerLogits);
        be.RouteExperts(_routerLogits, rows, _routing, _probabilities);
        if (observer is not null) ObserveRouting(observer, layer, rows);

        be.ExpertMatMul(w.Gate, _routing, x, rows, inputPerSlot: false, _gate);
        be.ExpertMatMul(w.Up, _routing, x, rows, inputPerSlot: false, _up);
        be.SwiGlu(_gate, _up, slots * hidden, _hidden);
        be.ExpertMatMul(w.Down, _routing, _hidden, rows, inputPerSlot: true, _down);
        Observe(observer, "ffn_moe_down", layer, _down, slots, width);
        be.CombineExperts(_down, _routing, rows, width, output);
        Observe(observer, "ffn_moe_out", layer, output, rows, width);

        if (w.SharedExpert is { } shared) AddSharedExpert(shared, w.SharedExpertGate!, x, rows, output, layer, observer);
    }

    /// <summary>qwen2moe: output += sigmoid(w_gate · x) · SwiGLU_shared(x), for every token.</summary>
    void AddSharedExpert(SwiGluWeights shared, WeightMatrix gate, ActivationBuffer x, int rows, ActivationBuffer output, int layer, ForwardObserver? observer)
    {
        int width = _config.EmbeddingLength;
        _backend.MatMul(gate, x, rows, _sharedGateLogit);
        _swiGlu.Forward(shared, x, rows, _sharedOutput);
        if (observer is not null)
        {
            var gates = Read(_sharedGateLogit, rows);
            for (int t = 0; t < rows; t++) gates[t] = 1f / (1f + MathF.Exp(-gates[t]));
            observer("ffn_shexp_gate", layer, rows, 1, gates);
            observer("ffn_shexp", layer, rows, width, Read(_sharedOutput, rows * width));
        }
        _backend.AddSigmoidGated(_sharedGateLogit, _sharedOutput, rows, width, output);
    }

    /// <summary>The routing as llama.cpp names it: logits, probabilities, the chosen experts, their weights before
    /// and after renormalizing. Read back only for an observer.</summary>
    void ObserveRouting(ForwardObserver observer, int layer, int rows)
    {
        int experts = _config.ExpertCount, k = _config.ExpertsPerToken;
        var probabilities = Read(_probabilities, rows * experts);
        var chosen = new int[rows * k];
        var weights = new float[rows * k];
        _backend.ReadRouting(_routing, rows, chosen, weights);
        var rawWeights = new float[rows * k];
        for (int i = 0; i < chosen.Length; i++) rawWeights[i] = probabilities[i / k * experts + chosen[i]];
        observer("ffn_moe_logits", layer, rows, experts, Read(_routerLogits, rows * experts));
        observer("ffn_moe_probs", layer, rows, experts, probabilities);
        observer("ffn_moe_topk", layer, rows, k, chosen.Select(e => (float)e).ToArray());
        observer("ffn_moe_weights", layer, rows, k, rawWeights);
        if (_config.NormalizeExpertWeights) observer("ffn_moe_weights_norm", layer, rows, k, weights);
    }

    float[] Read(ActivationBuffer buffer, int length)
    {
        var values = new float[length];
        _backend.Read(buffer, 0, values);
        return values;
    }

    void Observe(ForwardObserver? observer, string name, int layer, ActivationBuffer buffer, int rows, int width)
    {
        if (observer is not null) observer(name, layer, rows, width, Read(buffer, rows * width));
    }
}
