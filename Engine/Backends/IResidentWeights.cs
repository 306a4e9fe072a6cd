using Engine.Models;

namespace Engine.Backends;

/// <summary>A backend that keeps weights in its own memory (a GPU's, or the CPU backend's re-laid-out copy)
/// rather than reading them from the memory map. The loader hands it the weights it will compute with once,
/// after the model has allocated its activations, so it can check that everything fits and prepare it all
/// before the first token.</summary>
internal interface IResidentWeights
{
    void Upload(WeightSet weights);
}

/// <summary>The weights one backend computes with: all of a model's, or those of its share of the layers.
/// The experts' matrices of MoE layers come as stacks (<see cref="ExpertStacks"/>), not in <see cref="Matrices"/>.</summary>
internal sealed record WeightSet(IReadOnlyList<WeightMatrix> Matrices, IReadOnlyList<WeightVector> Vectors)
{
    /// <summary>The gate, up and down stacks of every MoE layer in the set.</summary>
    public IReadOnlyList<ExpertMatrices> ExpertStacks { get; init; } = [];

    /// <summary><see cref="Matrices"/> and every expert's matrix: each weight matrix of the set once.</summary>
    public IEnumerable<WeightMatrix> AllMatrices => Matrices.Concat(ExpertStacks.SelectMany(s => s.Experts));

    /// <summary>Those of <see cref="Matrices"/> only read a row at a time, never multiplied (an untied token
    /// embedding): a backend need not lay them out for matmuls.</summary>
    public IReadOnlyList<WeightMatrix> LookupOnly { get; init; } = [];
}
