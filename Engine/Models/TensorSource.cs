using Engine.Formats;

namespace Engine.Models;

/// <summary>Where weights come from, addressed by their GGUF names ("blk.0.attn_q.weight"); a Safetensors
/// folder maps its Hugging Face names onto these, so the loader and the model see one vocabulary.</summary>
internal interface ITensorSource
{
    bool TryGetTensor(string ggufName, out TensorView view);
}
