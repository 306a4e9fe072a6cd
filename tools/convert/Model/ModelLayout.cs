using Engine.Convert.Presets;
using Engine.Convert.Quant;
using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Quantization;

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
        var ordered = converterMade ? tensors : tensors.OrderBy(t => t.Name, TensorOrder.Instance).ToList();
        // The type choice counts attn_v layers in llama-quantize's order, whatever order the file is written in.
        var quantizerOrder = ordered.OrderBy(t => t.Name, TensorOrder.Instance).ToList();
        var model = new ModelShape(preset.Architecture, preset.Layers, preset.Moe?.ExpertCount ?? 0, preset.Heads, preset.KvHeads);
        // The converter stores what llama.cpp never quantizes (norms, biases, the router) as F32.
        var types = TensorTypePlanner.Plan(quantizerOrder.Select(t => new TensorShape(t.Name, t.Shape)).ToList(),
            quantizerOrder.Select(_ => GgmlType.F32).ToList(), type.Mix, model, pure: false, hasImatrix: false);
        var byName = quantizerOrder.Select((t, i) => (t.Name, Type: types[i])).ToDictionary(p => p.Name, p => p.Type);
        return ordered.Select(t => new PlannedTensor(t, byName[t.Name])).ToList();
    }

    /// <summary>Bytes of tensor data (each tensor padded to the 32-byte GGUF alignment), without the metadata.</summary>
    public static long DataBytes(IEnumerable<PlannedTensor> tensors) =>
        tensors.Sum(t => (t.ByteSize + GgufLimits.DefaultAlignment - 1) / GgufLimits.DefaultAlignment * GgufLimits.DefaultAlignment);

    /// <summary>"Q4_K 169, Q6_K 29, F32 113": tensors per type, most common first.</summary>
    public static string TypeCounts(IEnumerable<PlannedTensor> tensors) =>
        string.Join(", ", tensors.GroupBy(t => t.Type).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).Select(g => $"{g.Key} {g.Count()}"));
}
