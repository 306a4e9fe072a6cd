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

    /// <summary>Floats the constructor allocates in the backend, the host routing's buffers (a CPU backend's) included.</summary>
    public static long Floats(ModelConfig config, int maxRows)
    {
        long slots = (long)maxRows * config.ExpertsPerToken;
        long own = 2L * maxRows * config.ExpertCount + 3 * slots * config.ExpertFeedForwardLength + slots * config.EmbeddingLength
            + (long)maxRows * config.EmbeddingLength + maxRows;
        return own + HostExpertRouting.Floats(ExpertRoutingShape.Of(config, maxRows));
    }

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

    /// <summary>output (rows x d_model) = the mixture of experts applied to x (rows x d_model, already normalized).
    /// `hooks` (null for none) sees the router logits before the routing (a change there changes the choice), the routing
    /// as llama.cpp names it, each slot's expert output and the sum.</summary>
    public void Forward(MixtureOfExpertsWeights w, ActivationBuffer x, int rows, ActivationBuffer output, HookSite? hooks)
    {
        var be = _backend;
        int width = _config.EmbeddingLength, k = _config.ExpertsPerToken, slots = rows * k, hidden = w.HiddenWidth;

        be.MatMul(w.Router, x, rows, _routerLogits);
        hooks?.Point("ffn_moe_logits", _routerLogits, _config.ExpertCount);
        be.RouteExperts(_routerLogits, rows, _routing, _probabilities);
        if (hooks is not null) ShowRouting(hooks, rows);

        be.ExpertMatMul(w.Gate, _routing, x, rows, inputPerSlot: false, _gate);
        be.ExpertMatMul(w.Up, _routing, x, rows, inputPerSlot: false, _up);
        be.SwiGlu(_gate, _up, slots * hidden, _hidden);
        hooks?.Point("ffn_moe_swiglu", _hidden, k * hidden);     // each slot's down-projection input (imatrix reads it)
        be.ExpertMatMul(w.Down, _routing, _hidden, rows, inputPerSlot: true, _down);
        hooks?.Point("ffn_moe_down", _down, k * width);          // a token's k slots are consecutive rows
        be.CombineExperts(_down, _routing, rows, width, output);
        hooks?.Point("ffn_moe_out", output, width);

        if (w.SharedExpert is { } shared) AddSharedExpert(shared, w.SharedExpertGate!, x, rows, output, hooks);
    }

    /// <summary>qwen2moe: output += sigmoid(w_gate · x) · SwiGLU_shared(x), for every token.</summary>
    void AddSharedExpert(SwiGluWeights shared, WeightMatrix gate, ActivationBuffer x, int rows, ActivationBuffer output, HookSite? hooks)
    {
        int width = _config.EmbeddingLength;
        _backend.MatMul(gate, x, rows, _sharedGateLogit);
        _swiGlu.Forward(shared, x, rows, _sharedOutput);
        if (hooks is not null && hooks.Wants("ffn_shexp_gate"))
        {
            var gates = Read(_sharedGateLogit, rows);
            for (int t = 0; t < rows; t++) gates[t] = 1f / (1f + MathF.Exp(-gates[t]));
            hooks.Derived("ffn_shexp_gate", gates, 1);
        }
        hooks?.Point("ffn_shexp", _sharedOutput, width);
        _backend.AddSigmoidGated(_sharedGateLogit, _sharedOutput, rows, width, output);
    }

    /// <summary>The routing as llama.cpp names it: probabilities, the chosen experts, their weights before and after
    /// renormalizing. Read back only when someone looks.</summary>
    void ShowRouting(HookSite hooks, int rows)
    {
        int experts = _config.ExpertCount, k = _config.ExpertsPerToken;
        string[] names = ["ffn_moe_probs", "ffn_moe_topk", "ffn_moe_weights", "ffn_moe_weights_norm"];
        if (!names.Any(hooks.Wants)) return;
        var probabilities = Read(_probabilities, rows * experts);
        var chosen = new int[rows * k];
        var weights = new float[rows * k];
        _backend.ReadRouting(_routing, rows, chosen, weights);
        var rawWeights = new float[rows * k];
        for (int i = 0; i < chosen.Length; i++) rawWeights[i] = probabilities[i / k * experts + chosen[i]];
        hooks.Derived("ffn_moe_probs", probabilities, experts);
        hooks.Derived("ffn_moe_topk", chosen.Select(e => (float)e).ToArray(), k);
        hooks.Derived("ffn_moe_weights", rawWeights, k);
        if (_config.NormalizeExpertWeights) hooks.Derived("ffn_moe_weights_norm", weights, k);
    }

    float[] Read(ActivationBuffer buffer, int length)
    {
        var values = new float[length];
        _backend.Read(buffer, 0, values);
        return values;
    }
}
