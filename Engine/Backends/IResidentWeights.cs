using Engine.Models;

namespace Engine.Backends;

/// <summary>A backend that keeps the weights in its own memory (a GPU) rather than reading them from the memory
/// map. The loader hands it every weight once, after the model has allocated its activations, so it can check
/// that everything fits and upload it all before the first token.</summary>
public interface IResidentWeights
{
    void Upload(LlamaWeights weights);
}
