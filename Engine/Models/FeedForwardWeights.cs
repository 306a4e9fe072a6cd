namespace Engine.Models;

/// <summary>The weights of one layer's feed-forward: a single SwiGLU, or a mixture of SwiGLU experts.</summary>
internal abstract record FeedForwardWeights;

/// <summary>W_down · (silu(W_gate · x) ⊙ (W_up · x)), shapes in y = W x form.</summary>
internal sealed record SwiGluWeights(
    WeightMatrix Gate,  // [d_model x d_ff]
    WeightMatrix Up,    // [d_model x d_ff]
    WeightMatrix Down)  // [d_ff x d_model]
    : FeedForwardWeights
{
    public int HiddenWidth => Gate.Rows;
}

/// <summary>A router and a set of SwiGLU experts: each token goes through the few experts the router scores
/// highest, and their outputs are summed with the router's weights. The experts' gates, ups and downs are each
/// held as one stack (ggml's ffn_gate_exps, ffn_up_exps, ffn_down_exps), which a backend indexes by expert.</summary>
internal sealed record MixtureOfExpertsWeights(
    WeightMatrix Router,              // [d_model x n_expert]: one logit per expert ("ffn_gate_inp")
    ExpertMatrices Gate,              // n_expert x [d_model x d_expert]
    ExpertMatrices Up,                // n_expert x [d_model x d_expert]
    ExpertMatrices Down,              // n_expert x [d_expert x d_model]
    SwiGluWeights? SharedExpert,      // qwen2moe: a SwiGLU every token also passes through
    WeightMatrix? SharedExpertGate)   // qwen2moe: [d_model x 1]; sigmoid of it scales the shared expert's output
    : FeedForwardWeights
{
    public int ExpertCount => Gate.Count;
    public int HiddenWidth => Gate.Rows;

    /// <summary>Expert e as a plain SwiGLU (views of its three matrices).</summary>
    public SwiGluWeights Expert(int e) => new(Gate[e], Up[e], Down[e]);
}

/// <summary>The same matrix of every expert of one layer (all the gates, all the ups or all the downs): n_expert
/// matrices of one shape and type. From a GGUF they are consecutive slices of one stacked tensor; from per-expert
/// tensors (Hugging Face, old Mixtral GGUFs) separate ones. A backend multiplies each token by the ones its router
/// chose (<see cref="Engine.Backends.IBackend.ExpertMatMul"/>); a GPU holds the stack as one block it indexes by
/// expert on the device.</summary>
internal sealed class ExpertMatrices
{
    readonly WeightMatrix[] _experts;

    public ExpertMatrices(string name, WeightMatrix[] experts)
    {
        if (experts.Length == 0) throw new ArgumentException($"{name}: no experts", nameof(experts));
        foreach (var m in experts)
            if (m.Type != experts[0].Type || m.Rows != experts[0].Rows || m.Cols != experts[0].Cols)
                throw new Engine.Formats.ModelFormatException(Engine.Formats.FormatErrorKind.InvalidShape,
                    $"expert matrices of {name} differ: {m} against {experts[0]}; every expert of a layer needs one shape and type",
                    field: m.Name);
        Name = name;
        _experts = experts;
    }

    public string Name { get; }
    public IReadOnlyList<WeightMatrix> Experts => _experts;
    public WeightMatrix this[int expert] => _experts[expert];
    public int Count => _experts.Length;
    /// <summary>Output rows of one expert's matrix.</summary>
    public int Rows => _experts[0].Rows;
    /// <summary>Input width.</summary>
    public int Cols => _experts[0].Cols;
    public Engine.Formats.GgmlType Type => _experts[0].Type;
    public override string ToString() => $"{Name} {Count} x {_experts[0]}";
}
