using Engine.Convert.Presets;
using Engine.Convert.Quant;
using Engine.Formats;
using Engine.Formats.Gguf;

namespace Engine.Convert.Model;

/// <summary>One tensor as it will be stored: its spec and the ggml type chosen for it.</summary>
public sealed record PlannedTensor(TensorSpec Spec, GgmlType Type)
{
    public long ByteSize => GgufWriter.TensorByteSize(Type, Spec.Shape);
}

/// <summary>The tensors of a preset in one output type, in file order: F16 and F32 files in the converter's order
/// (they are what convert_hf_to_gguf.py makes), the others in llama-quantize's order (they are what it makes from
/// the F16 file), so each file lays out like the one llama.cpp's own tools would make.</summary>
public static class ModelLayout
{
    public static IReadOnlyList<PlannedTensor> Plan(ModelPreset preset, OutputType type, int vocabRows)
    {
        var tensors = TensorPlan.For(preset, vocabRows);
        bool converterMade = type == OutputType.F16 || type == OutputType.F32;
        var ordered = converterMade ? tensors : QuantizerTensorOrder.Sort(tensors);
        var facts = new ModelFacts(preset.Layers, preset.Moe?.ExpertCount ?? 0, preset.TiedOutput);
        return ordered.Select(t => new PlannedTensor(t, TensorTypeRules.Choose(type, t, facts))).ToList();
    }

    /// <summary>Bytes of tensor data (each tensor padded to the 32-byte GGUF alignment), without the metadata.</summary>
    public static long DataBytes(IEnumerable<PlannedTensor> tensors) =>
        tensors.Sum(t => (t.ByteSize + GgufLimits.DefaultAlignment - 1) / GgufLimits.DefaultAlignment * GgufLimits.DefaultAlignment);

    /// <summary>"Q4_K 169, Q6_K 29, F32 113": tensors per type, most common first.</summary>
    public static string TypeCounts(IEnumerable<PlannedTensor> tensors) =>
        string.Join(", ", tensors.GroupBy(t => t.Type).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).Select(g => $"{g.Key} {g.Count()}"));
}
