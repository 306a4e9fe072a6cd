using Engine.Backends;

namespace Engine.Models;

/// <summary>One backend's share of a model's layers, [FirstLayer, FirstLayer + LayerCount). A model split over
/// a GPU and the CPU (--gpu-layers) is two stages; the first also embeds the tokens, the last also computes the
/// logits. Each stage keeps its activations and its part of the KV cache in its own backend's memory.</summary>
internal sealed record LayerStage(IBackend Backend, int FirstLayer, int LayerCount)
{
    public int EndLayer => FirstLayer + LayerCount;

    /// <summary>Checks that stages are in order, each non-empty, and together cover every layer exactly once.</summary>
    public static void Validate(IReadOnlyList<LayerStage> stages, int layerCount)
    {
        if (stages.Count == 0) throw new ArgumentException("a model needs at least one stage", nameof(stages));
        int next = 0;
        foreach (var stage in stages)
        {
            if (stage.FirstLayer != next || stage.LayerCount <= 0)
                throw new ArgumentException($"stage [{stage.FirstLayer}, {stage.EndLayer}) does not continue the layers at {next}", nameof(stages));
            next = stage.EndLayer;
        }
        if (next != layerCount)
            throw new ArgumentException($"the stages cover layers [0, {next}) but the model has {layerCount}", nameof(stages));
    }
}
