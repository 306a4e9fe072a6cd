using System.Text;
using System.Text.Json.Nodes;
using Engine.Formats;
using Engine.Formats.HuggingFace;

namespace Engine.Tests.Safetensors;

/// <summary>config.json: typed reading, defaults, and rejection of wrong types and out-of-range values
/// (checklist S9 / M2 / M6, F7 for duplicate properties).</summary>
public class HfConfigTests
{
    const string Llama = """
        {
          "architectures": ["LlamaForCausalLM"], "model_type": "llama",
          "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5,
          "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512,
          "max_position_embeddings": 512, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
          "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
          "hidden_act": "silu", "some_future_field": {"nested": [1, 2, {"x": null}]}
        }
        """;

    /// <summary>The Llama config with one field set (or removed, when <paramref name="json"/> is null).</summary>
    static string With(string field, string? json)
    {
        var node = JsonNode.Parse(Llama)!.AsObject();
        node.Remove(field);
        if (json is not null) node[field] = JsonNode.Parse(json);
        return node.ToJsonString();
    }

    static ModelFormatException Reject(string json) =>
        FluentActions.Invoking(() => HfConfig.Parse(json, "config.json")).Should().Throw<ModelFormatException>().Which;

    [Fact]
    public void Reads_a_llama_config()
    {
        var c = HfConfig.Parse(Llama);
        c.Architectures.Should().Equal("LlamaForCausalLM");
        c.ModelType.Should().Be("llama");
        c.HiddenSize.Should().Be(64);
        c.IntermediateSize.Should().Be(172);
        c.NumHiddenLayers.Should().Be(5);
        c.NumAttentionHeads.Should().Be(8);
        c.NumKeyValueHeads.Should().Be(4);
        c.HeadDim.Should().BeNull();
        c.EffectiveHeadDim.Should().Be(8);
        c.VocabSize.Should().Be(512);
        c.MaxPositionEmbeddings.Should().Be(512);
        c.RmsNormEps.Should().Be(1e-5);
        c.RopeTheta.Should().Be(10000);
        c.TieWordEmbeddings.Should().BeTrue();
        c.BosTokenId.Should().Be(1);
        c.EosTokenIds.Should().Equal(2);
        c.TorchDtype.Should().Be("float32");
        c.IsMoe.Should().BeFalse();
    }

    [Fact]
    public void Defaults_when_optional_fields_are_absent_or_null()
    {
        var node = JsonNode.Parse(Llama)!.AsObject();
        foreach (var f in new[] { "num_key_value_heads", "rope_theta", "tie_word_embeddings", "bos_token_id", "eos_token_id", "architectures" })
            node.Remove(f);
        node["head_dim"] = null;
        node["rope_scaling"] = null;
        var c = HfConfig.Parse(node.ToJsonString());
        c.NumKeyValueHeads.Should().Be(8);
        c.RopeTheta.Should().Be(10000);
        c.TieWordEmbeddings.Should().BeFalse();
        c.BosTokenId.Should().BeNull();
        c.EosTokenIds.Should().BeEmpty();
        c.Architectures.Should().BeEmpty();
        c.RopeScaling.Should().BeNull();
    }

    [Fact]
    public void Eos_may_be_a_list()
    {
        HfConfig.Parse(With("eos_token_id", "[2, 7, 9]")).EosTokenIds.Should().Equal(2, 7, 9);
    }

    [Fact]
    public void Rope_scaling_llama3_and_the_old_type_spelling()
    {
        var c = HfConfig.Parse(With("rope_scaling",
            """{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 256}"""));
        c.RopeScaling.Should().BeEquivalentTo(new HfRopeScaling
        {
            RopeType = "llama3", Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 256,
        });
        var yarn = HfConfig.Parse(With("rope_scaling", """{"type": "yarn", "factor": 4, "beta_fast": 32, "beta_slow": 1}""")).RopeScaling!;
        yarn.RopeType.Should().Be("yarn");
        yarn.BetaFast.Should().Be(32);
    }

    [Fact]
    public void Transformers5_rope_parameters()
    {
        var node = JsonNode.Parse(Llama)!.AsObject();
        node.Remove("rope_theta");
        node["rope_parameters"] = JsonNode.Parse("""{"rope_type": "linear", "rope_theta": 500000, "factor": 2}""");
        var c = HfConfig.Parse(node.ToJsonString());
        c.RopeTheta.Should().Be(500000);
        c.RopeScaling!.RopeType.Should().Be("linear");
        c.RopeScaling.Factor.Should().Be(2);
    }

    [Fact]
    public void Moe_fields_qwen_and_mixtral_spellings()
    {
        var node = JsonNode.Parse(Llama)!.AsObject();
        node["num_experts"] = 8;
        node["num_experts_per_tok"] = 2;
        node["moe_intermediate_size"] = 32;
        node["shared_expert_intermediate_size"] = 64;
        node["norm_topk_prob"] = true;
        node["decoder_sparse_step"] = 1;
        node["mlp_only_layers"] = JsonNode.Parse("[0, 4]");
        var c = HfConfig.Parse(node.ToJsonString());
        c.IsMoe.Should().BeTrue();
        c.NumExperts.Should().Be(8);
        c.NumExpertsPerTok.Should().Be(2);
        c.MoeIntermediateSize.Should().Be(32);
        c.SharedExpertIntermediateSize.Should().Be(64);
        c.NormTopkProb.Should().BeTrue();
        c.DecoderSparseStep.Should().Be(1);
        c.MlpOnlyLayers.Should().Equal(0, 4);

        node.Remove("num_experts");
        node["num_local_experts"] = 4;
        HfConfig.Parse(node.ToJsonString()).NumExperts.Should().Be(4);
    }

    [Theory]
    [InlineData("hidden_size")]
    [InlineData("intermediate_size")]
    [InlineData("num_hidden_layers")]
    [InlineData("num_attention_heads")]
    [InlineData("vocab_size")]
    [InlineData("max_position_embeddings")]
    [InlineData("rms_norm_eps")]
    [InlineData("model_type")]
    public void Required_field_missing(string field)
    {
        var e = Reject(With(field, null));
        e.Kind.Should().Be(FormatErrorKind.MissingKey);
        e.Field.Should().Be(field);
        e.FilePath.Should().Be("config.json");
    }

    [Theory]
    [InlineData("hidden_size", "\"64\"")]
    [InlineData("hidden_size", "64.5")]
    [InlineData("hidden_size", "true")]
    [InlineData("hidden_size", "[64]")]
    [InlineData("rms_norm_eps", "\"1e-5\"")]
    [InlineData("tie_word_embeddings", "1")]
    [InlineData("tie_word_embeddings", "\"true\"")]
    [InlineData("model_type", "7")]
    [InlineData("architectures", "\"LlamaForCausalLM\"")]
    [InlineData("architectures", "[1]")]
    [InlineData("eos_token_id", "\"2\"")]
    [InlineData("eos_token_id", "[2, \"3\"]")]
    [InlineData("rope_scaling", "\"linear\"")]
    [InlineData("rope_scaling", "{\"factor\": \"2\"}")]
    public void Wrong_type(string field, string json)
    {
        var e = Reject(With(field, json));
        e.Kind.Should().Be(FormatErrorKind.InvalidConfig);
        e.Field.Should().StartWith(field);
        e.Expected.Should().NotBeNull();
        e.Actual.Should().NotBeNull();
    }

    [Theory]
    [InlineData("hidden_size", "0")]
    [InlineData("hidden_size", "-64")]
    [InlineData("hidden_size", "4294967296")]
    [InlineData("num_hidden_layers", "0")]
    [InlineData("num_attention_heads", "0")]
    [InlineData("num_key_value_heads", "0")]
    [InlineData("num_key_value_heads", "3")]   // 8 % 3 != 0
    [InlineData("num_key_value_heads", "16")]  // more kv heads than heads
    [InlineData("num_attention_heads", "7")]   // 64 % 7 != 0 with no head_dim
    [InlineData("head_dim", "0")]
    [InlineData("vocab_size", "0")]
    [InlineData("max_position_embeddings", "0")]
    [InlineData("rms_norm_eps", "0")]
    [InlineData("rms_norm_eps", "-1e-5")]
    [InlineData("rms_norm_eps", "1e999")]
    [InlineData("rope_theta", "0")]
    [InlineData("rope_theta", "-10000")]
    [InlineData("bos_token_id", "512")]
    [InlineData("bos_token_id", "-1")]
    [InlineData("eos_token_id", "[2, 512]")]
    [InlineData("rope_scaling", "{\"rope_type\": \"linear\", \"factor\": 0}")]
    [InlineData("rope_scaling", "{\"rope_type\": \"llama3\", \"type\": \"yarn\"}")]
    [InlineData("rope_scaling", "{\"original_max_position_embeddings\": 1024}")]
    [InlineData("mlp_only_layers", "[5]")]
    [InlineData("decoder_sparse_step", "0")]
    public void Out_of_range(string field, string json)
    {
        var e = Reject(With(field, json));
        e.Kind.Should().Be(FormatErrorKind.InvalidConfig);
        e.Field.Should().NotBeNull();
    }

    [Fact]
    public void Moe_expert_counts_must_agree()
    {
        var node = JsonNode.Parse(Llama)!.AsObject();
        node["num_experts"] = 4;
        Reject(node.ToJsonString()).Kind.Should().Be(FormatErrorKind.MissingKey); // MoE without num_experts_per_tok
        node["num_experts_per_tok"] = 5;
        Reject(node.ToJsonString()).Field.Should().Be("num_experts_per_tok");
        node["num_experts_per_tok"] = 0;
        Reject(node.ToJsonString()).Kind.Should().Be(FormatErrorKind.InvalidConfig);
        node["num_experts_per_tok"] = 2;
        node["num_local_experts"] = 8;
        Reject(node.ToJsonString()).Field.Should().Be("num_local_experts");
    }

    [Fact]
    public void Duplicate_properties_are_rejected_at_any_depth()
    {
        var e = Reject(Llama.Replace("\"hidden_size\": 64,", "\"hidden_size\": 64, \"hidden_size\": 128,"));
        e.Kind.Should().Be(FormatErrorKind.Duplicate);
        e.Field.Should().Be("hidden_size");
        var nested = Reject(With("rope_scaling", "{}").Replace("\"rope_scaling\":{}", "\"rope_scaling\":{\"factor\":2,\"factor\":3}"));
        nested.Kind.Should().Be(FormatErrorKind.Duplicate);
        nested.Field.Should().Be("rope_scaling.factor");
    }

    [Theory]
    [InlineData("")]
    [InlineData("{")]
    [InlineData("[]")]
    [InlineData("{\"hidden_size\": 64,}")]
    [InlineData("{} {}")]
    public void Not_a_json_object(string json)
    {
        Reject(json).Kind.Should().Be(FormatErrorKind.InvalidConfig);
    }

    [Fact]
    public void Invalid_utf8()
    {
        var bytes = Encoding.UTF8.GetBytes(Llama);
        bytes[Llama.IndexOf("llama\"", StringComparison.Ordinal)] = 0xFF;
        FluentActions.Invoking(() => HfConfig.Parse(bytes, null)).Should().Throw<ModelFormatException>()
            .Which.Kind.Should().Be(FormatErrorKind.InvalidUtf8);
    }

    [Fact]
    public void Excessive_nesting_is_rejected()
    {
        string deep = new string('[', 1000) + new string(']', 1000);
        Reject(Llama.Replace("\"hidden_act\": \"silu\"", "\"hidden_act\": " + deep)).Kind.Should().Be(FormatErrorKind.InvalidConfig);
    }

    [Fact]
    public void Load_reads_a_file_or_a_folder()
    {
        using var dir = new TempDir();
        dir.Write("config.json", Llama);
        HfConfig.Load(dir.Path).HiddenSize.Should().Be(64);
        HfConfig.Load(Path.Combine(dir.Path, "config.json")).NumHiddenLayers.Should().Be(5);
        dir.Write("config.json", With("hidden_size", "0"));
        FluentActions.Invoking(() => HfConfig.Load(dir.Path)).Should().Throw<ModelFormatException>()
            .Which.FilePath.Should().EndWith("config.json");
        using var empty = new TempDir();
        FluentActions.Invoking(() => HfConfig.Load(empty.Path)).Should().Throw<ModelFormatException>()
            .Which.Kind.Should().Be(FormatErrorKind.Io);
    }
}
