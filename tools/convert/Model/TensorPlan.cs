using Engine.Convert.Presets;

namespace Engine.Convert.Model;

/// <summary>The tensors of a preset, named and shaped as llama.cpp's converter writes them, in the converter's order
/// (the order the oracle's make_synthetic_gguf.py uses too, with rope_freqs first as convert_hf_to_gguf.py puts it).</summary>
public static class TensorPlan
{
    public static IReadOnlyList<TensorSpec> For(ModelPreset p, int vocabSize)
    {
        long dim = p.Hidden, q = (long)p.Heads * p.HeadDim, kv = (long)p.KvHeads * p.HeadDim, ff = p.FeedForward;
        var list = new List<TensorSpec>();
        void Add(string name, TensorContent content, int layer, params long[] shape) => list.Add(new(name, shape, content, layer));

        if (p.RopeScaling is not null) Add("rope_freqs.weight", TensorContent.RopeFrequencies, -1, p.HeadDim / 2);
        Add("token_embd.weight", TensorContent.Weight, -1, dim, vocabSize);
        Add("output_norm.weight", TensorContent.Norm, -1, dim);
        if (!p.TiedOutput) Add("output.weight", TensorContent.Weight, -1, dim, vocabSize);

        for (int i = 0; i < p.Layers; i++)
        {
            string b = $"blk.{i}.";
            Add(b + "attn_norm.weight", TensorContent.Norm, i, dim);
            Add(b + "attn_q.weight", TensorContent.Weight, i, dim, q);
            Add(b + "attn_k.weight", TensorContent.Weight, i, dim, kv);
            Add(b + "attn_v.weight", TensorContent.Weight, i, dim, kv);
            Add(b + "attn_output.weight", TensorContent.Weight, i, q, dim);
            Add(b + "ffn_norm.weight", TensorContent.Norm, i, dim);
            if (p.QkvBias)
            {
                Add(b + "attn_q.bias", TensorContent.Bias, i, q);
                Add(b + "attn_k.bias", TensorContent.Bias, i, kv);
                Add(b + "attn_v.bias", TensorContent.Bias, i, kv);
            }
            if (p.QkNorm)
            {
                Add(b + "attn_q_norm.weight", TensorContent.Norm, i, p.HeadDim);
                Add(b + "attn_k_norm.weight", TensorContent.Norm, i, p.HeadDim);
            }
            if (p.Moe is { } moe)
            {
                long experts = moe.ExpertCount, fe = moe.ExpertFeedForward;
                // llama.cpp stacks the experts into one 3-D tensor per projection: [row length, rows, expert].
                Add(b + "ffn_gate_inp.weight", TensorContent.Router, i, dim, experts);
                Add(b + "ffn_gate_exps.weight", TensorContent.Weight, i, dim, fe, experts);
                Add(b + "ffn_up_exps.weight", TensorContent.Weight, i, dim, fe, experts);
                Add(b + "ffn_down_exps.weight", TensorContent.Weight, i, fe, dim, experts);
            }
            else
            {
                Add(b + "ffn_gate.weight", TensorContent.Weight, i, dim, ff);
                Add(b + "ffn_up.weight", TensorContent.Weight, i, dim, ff);
                Add(b + "ffn_down.weight", TensorContent.Weight, i, ff, dim);
            }
        }
        return list;
    }

    /// <summary>Parameters of a preset (every tensor's elements).</summary>
    public static long ParameterCount(ModelPreset p, int vocabSize) => For(p, vocabSize).Sum(t => t.ElementCount);
}
