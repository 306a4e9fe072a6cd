namespace Engine.Models;

/// <summary>The weights of one layer's feed-forward: a single SwiGLU, or a mixture of SwiGLU experts.</summary>
public abstract record FeedForwardWeights;

/// <summary>W_down · (silu(W_gate · x) ⊙ (W_up · x)), shapes in y = W x form.</summary>
public sealed record SwiGluWeights(
    WeightMatrix Gate,  // [d_model x d_ff]
    WeightMatrix Up,    // [d_model x d_ff]
    WeightMatrix Down)  // [d_ff x d_model]
    : FeedForwardWeights
{
    public int HiddenWidth => Gate.Rows;
}

/// <summary>A router and a set of SwiGLU experts: each token goes through the few experts the router scores
/// highest, and their outputs are summed with the router's weights.</summary>
public sealed record MixtureOfExpertsWeights(
    WeightMatrix Router,              // [d_model x n_expert]: one logit per expert ("ffn_gate_inp")
    SwiGluWeights[] Experts,          // n_expert SwiGLUs of width d_expert; from a GGUF, views into the stacked tensors
    SwiGluWeights? SharedExpert,      // qwen2moe: a SwiGLU every token also passes through
    WeightMatrix? SharedExpertGate)   // qwen2moe: [d_model x 1]; sigmoid of it scales the shared expert's output
    : FeedForwardWeights;
