using System.Text.Json;
using Engine.Convert.Presets;
using Engine.Formats;

namespace Engine.Convert.Safetensors;

/// <summary>The config.json transformers writes for these architectures (the fields its model classes read).</summary>
public static class HfConfigJson
{
    public static byte[] Build(ModelPreset p, int vocabSize, GgmlType dtype, long? bosId, long? eosId, Quant.Int4Settings? int4 = null)
    {
        var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            (string cls, string modelType) = p.Architecture switch
            {
                "llama" => ("LlamaForCausalLM", "llama"),
                "qwen2" => ("Qwen2ForCausalLM", "qwen2"),
                "qwen3" => ("Qwen3ForCausalLM", "qwen3"),
                "qwen3moe" => ("Qwen3MoeForCausalLM", "qwen3_moe"),
                _ => throw new ConvertException($"no Hugging Face layout for architecture {p.Architecture}"),
            };
            w.WriteStartObject();
            w.WriteStartArray("architectures");
            w.WriteStringValue(cls);
            w.WriteEndArray();
            w.WriteString("model_type", modelType);
            w.WriteString("_comment", $"random weights in the shape of {p.ShapeOf}, for speed benchmarks; made by engine-convert");
            w.WriteNumber("hidden_size", p.Hidden);
            w.WriteNumber("intermediate_size", p.FeedForward);
            w.WriteNumber("num_hidden_layers", p.Layers);
            w.WriteNumber("num_attention_heads", p.Heads);
            w.WriteNumber("num_key_value_heads", p.KvHeads);
            w.WriteNumber("head_dim", p.HeadDim);
            w.WriteNumber("vocab_size", vocabSize);
            w.WriteNumber("max_position_embeddings", p.ContextLength);
            w.WriteNumber("rms_norm_eps", p.RmsEpsilon);
            w.WriteNumber("rope_theta", p.RopeTheta);
            if (p.RopeScaling is { } s)
            {
                w.WriteStartObject("rope_scaling");
                w.WriteString("rope_type", "llama3");
                w.WriteNumber("factor", s.Factor);
                w.WriteNumber("low_freq_factor", s.LowFrequencyFactor);
                w.WriteNumber("high_freq_factor", s.HighFrequencyFactor);
                w.WriteNumber("original_max_position_embeddings", s.OriginalContextLength);
                w.WriteEndObject();
            }
            else w.WriteNull("rope_scaling");
            w.WriteBoolean("tie_word_embeddings", p.TiedOutput);
            w.WriteString("hidden_act", "silu");
            w.WriteBoolean("attention_bias", p.QkvBias);
            if (p.Moe is { } moe)
            {
                w.WriteNumber("num_experts", moe.ExpertCount);
                w.WriteNumber("num_experts_per_tok", moe.ExpertsUsed);
                w.WriteNumber("moe_intermediate_size", moe.ExpertFeedForward);
                w.WriteBoolean("norm_topk_prob", true);
                w.WriteNumber("decoder_sparse_step", 1);
                w.WriteStartArray("mlp_only_layers");
                w.WriteEndArray();
            }
            if (bosId is long bos) w.WriteNumber("bos_token_id", bos);
            if (eosId is long eos) w.WriteNumber("eos_token_id", eos);
            w.WriteString("torch_dtype", dtype switch { GgmlType.F16 => "float16", GgmlType.BF16 => "bfloat16", _ => "float32" });
            if (int4 is not null) Quant.Int4Checkpoint.WriteConfig(w, int4);
            w.WriteEndObject();
        }
        return ms.ToArray();
    }
}
