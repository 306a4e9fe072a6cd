using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Formats.HuggingFace;
using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Models;

/// <summary>The expert fields of ModelConfig, read from GGUF metadata and config.json, and their validation.</summary>
public class MoeConfigTests
{
    [Fact]
    public void Gguf_expert_metadata_is_read()
    {
        using var file = GgufFile.Open(Path.Combine(FixtureGoldenTests.FixtureFolder("fx-qwen3moe-Q8_0")!, "fx-qwen3moe-Q8_0.gguf"));
        var c = GgufModelConfig.Read(file);
        c.Architecture.Should().Be("qwen3moe");
        c.ExpertCount.Should().Be(8);
        c.ExpertsPerToken.Should().Be(2);
        c.ExpertFeedForwardLength.Should().Be(256);
        c.SharedExpertFeedForwardLength.Should().Be(0);
        c.NormalizeExpertWeights.Should().BeTrue("llama.cpp always renormalizes qwen3moe's top-k weights");
        c.ExpertGating.Should().Be(ExpertGating.Softmax);
        Enumerable.Range(0, c.LayerCount).Should().OnlyContain(l => c.IsMoeLayer(l));
    }

    [Fact]
    public void Dense_gguf_has_no_experts()
    {
        using var file = GgufFile.Open(Path.Combine(FixtureGoldenTests.FixtureFolder("fx-llama-Q8_0")!, "fx-llama-Q8_0.gguf"));
        var c = GgufModelConfig.Read(file);
        c.ExpertCount.Should().Be(0);
        c.IsMoeLayer(0).Should().BeFalse();
    }

    static HfConfig Hf(string extra) => HfConfig.Parse($$"""
        {"model_type": "qwen3_moe", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
         "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100, "max_position_embeddings": 64,
         "rms_norm_eps": 1e-6, "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32 {{extra}}}
        """);

    [Fact]
    public void Hugging_Face_expert_fields_follow_transformers()
    {
        var c = HfModelConfig.Read(Hf(""), hasLmHead: true);
        c.Architecture.Should().Be("qwen3moe");
        c.ExpertCount.Should().Be(8);
        c.ExpertsPerToken.Should().Be(2);
        c.ExpertFeedForwardLength.Should().Be(32);
        c.FeedForwardLength.Should().Be(128);
        c.NormalizeExpertWeights.Should().BeFalse("norm_topk_prob defaults to false in transformers");
        c.DenseLayers.Should().BeEmpty();

        HfModelConfig.Read(Hf(""", "norm_topk_prob": true"""), true).NormalizeExpertWeights.Should().BeTrue();
        // Layer i is sparse when (i + 1) % decoder_sparse_step == 0 and it is not in mlp_only_layers.
        var sparse = HfModelConfig.Read(Hf(""", "decoder_sparse_step": 2, "mlp_only_layers": [3]"""), true);
        sparse.DenseLayers.Should().Equal(0, 2, 3);
        sparse.IsMoeLayer(1).Should().BeTrue();
        sparse.IsMoeLayer(3).Should().BeFalse();
    }

    [Fact]
    public void Mixtral_experts_are_intermediate_size_wide_and_always_renormalized()
    {
        var c = HfModelConfig.Read(HfConfig.Parse("""
            {"model_type": "mixtral", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100, "max_position_embeddings": 64,
             "rms_norm_eps": 1e-5, "num_local_experts": 4, "num_experts_per_tok": 2}
            """), hasLmHead: true);
        c.Architecture.Should().Be("llama");
        c.ExpertCount.Should().Be(4);
        c.ExpertFeedForwardLength.Should().Be(128);
        c.NormalizeExpertWeights.Should().BeTrue();
    }

    static ModelConfig Moe(string arch = "qwen3moe") => new()
    {
        Architecture = arch, EmbeddingLength = 64, LayerCount = 2, HeadCount = 4, KvHeadCount = 2, HeadDim = 16, ValueHeadDim = 16,
        FeedForwardLength = 128, VocabSize = 100, TrainedContextLength = 64, RmsNormEpsilon = 1e-6f, RopeTheta = 1e6,
        RopeDimensions = 16, RopeStyle = RopeStyle.NeoX, ExpertCount = 8, ExpertsPerToken = 2, ExpertFeedForwardLength = 32,
    };

    [Theory]
    [InlineData("expert_used_count", 8, 9, 32)]   // more experts per token than there are
    [InlineData("expert_used_count", 8, 0, 32)]   // experts that no token reaches
    [InlineData("expert_count", 0, 0, 32)]        // qwen3moe without experts
    [InlineData("expert_count", 5000, 2, 32)]     // beyond llama.cpp's limit
    [InlineData("expert_feed_forward_length", 8, 2, 0)]
    public void Inconsistent_expert_fields_are_rejected_naming_the_field(string field, int experts, int used, int width)
    {
        var act = () => ModelConfigValidation.Validate(Moe() with { ExpertCount = experts, ExpertsPerToken = used, ExpertFeedForwardLength = width });
        act.Should().Throw<ModelFormatException>().Where(e => e.Field == field && e.Kind == FormatErrorKind.InvalidConfig);
    }

    [Fact]
    public void Other_expert_relations_are_checked()
    {
        var usedWithoutExperts = () => ModelConfigValidation.Validate(Moe("llama") with { ExpertCount = 0, ExpertsPerToken = 2 });
        usedWithoutExperts.Should().Throw<ModelFormatException>().Where(e => e.Field == "expert_used_count");
        var noSharedExpert = () => ModelConfigValidation.Validate(Moe("qwen2moe"));
        noSharedExpert.Should().Throw<ModelFormatException>().Where(e => e.Field == "expert_shared_feed_forward_length");
        var denseLayerOutOfRange = () => ModelConfigValidation.Validate(Moe() with { DenseLayers = [2] });
        denseLayerOutOfRange.Should().Throw<ModelFormatException>().Where(e => e.Field == "mlp_only_layers");
        ModelConfigValidation.Validate(Moe("llama") with { ExpertCount = 0, ExpertsPerToken = 0 }); // plain llama
        ModelConfigValidation.Validate(Moe("qwen2moe") with { SharedExpertFeedForwardLength = 64 });
    }

    [Fact]
    public void Expert_tensors_have_their_Hugging_Face_names()
    {
        HfTensorSource.HfNames("blk.3.ffn_gate.5.weight", false).Should()
            .Equal("model.layers.3.mlp.experts.5.gate_proj.weight", "model.layers.3.block_sparse_moe.experts.5.w1.weight");
        HfTensorSource.HfNames("blk.0.ffn_up.12.weight", false).Should().Contain("model.layers.0.block_sparse_moe.experts.12.w3.weight");
        HfTensorSource.HfNames("blk.0.ffn_down.1.weight", false).Should().Contain("model.layers.0.mlp.experts.1.down_proj.weight")
            .And.Contain("model.layers.0.block_sparse_moe.experts.1.w2.weight");
        HfTensorSource.HfNames("blk.1.ffn_gate_inp.weight", false).Should().Equal("model.layers.1.mlp.gate.weight", "model.layers.1.block_sparse_moe.gate.weight");
        HfTensorSource.HfNames("blk.1.ffn_gate_inp_shexp.weight", false).Should().Equal("model.layers.1.mlp.shared_expert_gate.weight");
    }
}
