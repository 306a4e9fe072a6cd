using Engine.Convert.Model;
using Engine.Convert.Output;
using Engine.Convert.Presets;
using Engine.Convert.Quant;

namespace Engine.Convert;

/// <summary>`engine-convert presets`: every preset's shape, parameter count and tensor data size per type.</summary>
public static class PresetTable
{
    /// <summary>Rows assumed for test shapes, whose vocabulary is whatever tokenizer they get.</summary>
    const int TestShapeVocab = 32000;

    static readonly OutputType[] SizeColumns = [OutputType.F16, OutputType.Q8_0, OutputType.Q4_0, OutputType.Q4_K_M];

    public static void Print(TextWriter w)
    {
        w.WriteLine($"{"preset",-15} {"arch",-8} {"params",8} {"layers",6} {"hidden",6} {"heads",6} {"hd",4} {"ffn",6} {"vocab",7} tied " +
                    string.Join(" ", SizeColumns.Select(t => $"{t.Name,10}")) + "  shape of");
        foreach (var p in PresetCatalog.All)
        {
            int vocab = p.VocabSize ?? TestShapeVocab;
            long parameters = TensorPlan.ParameterCount(p, vocab);
            string ffn = p.Moe is { } m ? $"{m.ExpertCount}x{m.ExpertFeedForward}" : p.FeedForward.ToString();
            string sizes = string.Join(" ", SizeColumns.Select(t => $"{Units.Size(ModelLayout.DataBytes(ModelLayout.Plan(p, t, vocab))),10}"));
            w.WriteLine($"{p.Name,-15} {p.Architecture,-8} {Units.Count(parameters),8} {p.Layers,6} {p.Hidden,6} {$"{p.Heads}/{p.KvHeads}",6} {p.HeadDim,4} " +
                        $"{ffn,6} {(p.VocabSize?.ToString() ?? "tok*"),7} {(p.TiedOutput ? "yes" : "no"),4} {sizes}  {p.ShapeOf}");
        }
        w.WriteLine();
        w.WriteLine("Sizes are tensor data; files add the tokenizer metadata (about 3-8 MiB). MoE ffn: experts x expert width.");
        w.WriteLine($"* test shapes take the tokenizer's size (sizes shown for {TestShapeVocab} tokens).");
        w.WriteLine("Types: " + string.Join(", ", OutputType.All.Select(t => t.Name)) + " (Q4_K_M: llama-quantize's mix; see docs/convert.md).");
    }
}
