using Engine.Formats;
using Engine.Formats.Gguf;

namespace Engine.Models;

/// <summary>A GGUF file's tensors, already under the names the model uses.</summary>
internal sealed class GgufTensorSource(GgufFile file) : ITensorSource
{
    public bool TryGetTensor(string ggufName, out TensorView view) => file.TryGetTensor(ggufName, out view!);
}
