using Engine.Convert.Presets;
using Engine.Convert.Quant;
using Engine.Convert.Weights;
using Engine.Formats.Gguf;

namespace Engine.Convert.Gguf;

/// <summary>The general.* and architecture keys llama.cpp's converter writes for these models (with the types
/// gguf-py gives them: counts uint32, rope base and epsilon float32), followed by the tokenizer.</summary>
public static class ModelMetadata
{
    /// <summary>GGML_QNT_VERSION, which the converter and llama-quantize write.</summary>
    const uint QuantizationVersion = 2;

    public static void Add(GgufWriter w, ModelPreset p, OutputType type, TokenizerMetadata tokenizer, ulong seed)
    {
        string arch = p.Architecture;
        string K(string suffix) => GgufKeys.Arch(arch, suffix);

        w.AddMetadata(GgufKeys.Architecture, arch);
        w.AddMetadata("general.type", "model");
        w.AddMetadata(GgufKeys.Name, "synthetic-" + p.Name);
        w.AddMetadata("general.description",
            $"random weights (normal, std {NormalPool.DefaultStd.ToString(System.Globalization.CultureInfo.InvariantCulture)}, seed {seed}) " +
            $"in the shape of {p.ShapeOf}, for speed benchmarks; made by engine-convert");
        w.AddMetadata(K("block_count"), (uint)p.Layers);
        w.AddMetadata(K("context_length"), (uint)p.ContextLength);
        w.AddMetadata(K("embedding_length"), (uint)p.Hidden);
        w.AddMetadata(K("feed_forward_length"), (uint)p.FeedForward);
        w.AddMetadata(K("attention.head_count"), (uint)p.Heads);
        w.AddMetadata(K("attention.head_count_kv"), (uint)p.KvHeads);
        w.AddMetadata(K("rope.freq_base"), (float)p.RopeTheta);
        w.AddMetadata(K("attention.layer_norm_rms_epsilon"), (float)p.RmsEpsilon);
        if (p.Moe is { } moe)
        {
            w.AddMetadata(K("expert_count"), (uint)moe.ExpertCount);
            w.AddMetadata(K("expert_used_count"), (uint)moe.ExpertsUsed);
        }
        if (p.WritesHeadDim)
        {
            w.AddMetadata(K("attention.key_length"), (uint)p.HeadDim);
            w.AddMetadata(K("attention.value_length"), (uint)p.HeadDim);
        }
        if (p.Moe is { } m) w.AddMetadata(K("expert_feed_forward_length"), (uint)m.ExpertFeedForward);
        w.AddMetadata(K("vocab_size"), (uint)tokenizer.TokenCount);
        w.AddMetadata(K("rope.dimension_count"), (uint)p.HeadDim);
        w.AddMetadata(GgufKeys.FileType, type.FileTypeId);
        w.AddMetadata(GgufKeys.QuantizationVersion, QuantizationVersion);
        foreach (var (key, value) in tokenizer.Entries) w.AddMetadata(key, value);
    }
}
