using global::Engine.Quantization;
using Engine.Convert.Model;
using Engine.Convert.Presets;
using Engine.Convert.Quant;
using Engine.Formats;

namespace Engine.Tests.Convert;

/// <summary>The tensor types engine-convert picks for Q4_K_M and Q4_0, against what llama.cpp's llama-quantize makes
/// of the same shapes (type counts of its output files; the choice depends on names and shapes only).</summary>
public class Q4KMixTests
{
    static Dictionary<GgmlType, int> Counts(string preset, OutputType type, int vocab) =>
        ModelLayout.Plan(PresetCatalog.Find(preset)!, type, vocab).GroupBy(t => t.Type).ToDictionary(g => g.Key, g => g.Count());

    [Fact]
    public void Qwen2_5_0_5B_falls_back_to_Q5_0_and_Q8_0_because_896_is_no_multiple_of_256()
    {
        // ../shared/oracle/README.md: llama.cpp's Q4_K_M of this shape is 132 Q5_0, 13 Q8_0, 12 Q4_K, 12 Q6_K.
        Counts("qwen2.5-0.5b", OutputType.Q4_K_M, 151936).Should().BeEquivalentTo(new Dictionary<GgmlType, int>
        {
            [GgmlType.Q5_0] = 132, [GgmlType.Q8_0] = 13, [GgmlType.Q4_K] = 12, [GgmlType.Q6_K] = 12, [GgmlType.F32] = 121,
        });
    }

    [Fact]
    public void Qwen3_0_6B_matches_llama_quantize()
    {
        // Compared tensor by tensor with make_bench_model.sh qwen3-0.6b Q4_K_M (llama.cpp de3ff81): identical.
        Counts("qwen3-0.6b", OutputType.Q4_K_M, 151936).Should().BeEquivalentTo(new Dictionary<GgmlType, int>
        {
            [GgmlType.Q4_K] = 168, [GgmlType.Q6_K] = 29, [GgmlType.F32] = 113,
        });
    }

    [Fact]
    public void Llama_3_1_8B_has_the_mix_of_the_published_Q4_K_M_files()
    {
        // 292 tensors: 193 q4_K, 33 q6_K (output, and attn_v / ffn_down in the 16 "more bits" layers), 66 f32.
        Counts("llama3.1-8b", OutputType.Q4_K_M, 128256).Should().BeEquivalentTo(new Dictionary<GgmlType, int>
        {
            [GgmlType.Q4_K] = 193, [GgmlType.Q6_K] = 33, [GgmlType.F32] = 66,
        });
    }

    [Fact]
    public void Q4_0_files_keep_the_output_matrix_in_Q6_K()
    {
        var plan = ModelLayout.Plan(PresetCatalog.Find("qwen3-0.6b")!, OutputType.Q4_0, 151936);
        plan.Single(t => t.Spec.Name == "token_embd.weight").Type.Should().Be(GgmlType.Q6_K); // tied: it is the output too
        plan.Where(t => t.Spec.Name.StartsWith("blk.") && t.Type != GgmlType.F32).Should().OnlyContain(t => t.Type == GgmlType.Q4_0);
    }

    [Fact]
    public void More_bits_layers_are_the_first_and_last_eighth_and_every_third_between()
    {
        Enumerable.Range(0, 24).Where(i => TensorTypePlanner.UseMoreBits(i, 24))
            .Should().Equal(0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23);
    }

    [Theory]
    [InlineData(GgmlType.Q4_K, 896, GgmlType.Q5_0)]
    [InlineData(GgmlType.Q6_K, 896, GgmlType.Q8_0)]
    [InlineData(GgmlType.Q5_K, 896, GgmlType.Q5_1)]
    [InlineData(GgmlType.Q4_K, 1024, GgmlType.Q4_K)]
    [InlineData(GgmlType.Q4_K, 100, GgmlType.F16)]
    [InlineData(GgmlType.Q8_0, 100, GgmlType.F16)]
    public void Row_lengths_that_do_not_split_into_blocks_fall_back(GgmlType target, long rowLength, GgmlType expected)
    {
        TensorTypePlanner.Fallback(target, rowLength).Should().Be(expected);
    }

    [Fact]
    public void Quantized_files_are_in_llama_quantize_order_and_F16_in_converter_order()
    {
        var preset = PresetCatalog.Find("qwen3-0.6b")!.WithLayers(11);
        ModelLayout.Plan(preset, OutputType.Q4_K_M, 1000).Select(t => t.Spec.Name).Take(4)
            .Should().Equal("output_norm.weight", "token_embd.weight", "blk.0.attn_k.weight", "blk.0.attn_k_norm.weight");
        ModelLayout.Plan(preset, OutputType.Q4_K_M, 1000).Select(t => TensorOrder.Layer(t.Spec.Name))
            .Should().BeInAscendingOrder("blk.10 comes after blk.9, not after blk.1");
        ModelLayout.Plan(preset, OutputType.F16, 1000).Select(t => t.Spec.Name).Take(3)
            .Should().Equal("token_embd.weight", "output_norm.weight", "blk.0.attn_norm.weight");
    }
}

/// <summary>The MoE layout: llama.cpp's stacked expert tensors, and the eight-expert special cases of its Q4_K_M.</summary>
public class MoeLayoutTests
{
    [Fact]
    public void Experts_are_stacked_3_D_tensors_and_the_router_stays_F32()
    {
        var plan = ModelLayout.Plan(PresetCatalog.Find("qwen3-30b-a3b")!, OutputType.Q4_K_M, 151936);
        var byName = plan.ToDictionary(t => t.Spec.Name);
        byName["blk.0.ffn_gate_exps.weight"].Spec.Shape.Should().Equal(2048, 768, 128);
        byName["blk.0.ffn_down_exps.weight"].Spec.Shape.Should().Equal(768, 2048, 128);
        byName["blk.0.ffn_gate_inp.weight"].Spec.Shape.Should().Equal(2048, 128);
        byName["blk.0.ffn_gate_inp.weight"].Type.Should().Be(GgmlType.F32);
        byName["blk.0.ffn_down_exps.weight"].Type.Should().Be(GgmlType.Q6_K, "layer 0 is a more-bits layer");
        byName["blk.6.ffn_down_exps.weight"].Type.Should().Be(GgmlType.Q4_K);
        plan.Should().HaveCount(579);
    }

    [Fact]
    public void Eight_expert_models_get_Q8_0_attention_k_v_and_Q5_K_attention_output()
    {
        var plan = ModelLayout.Plan(PresetCatalog.Find("test-qwen3moe")!, OutputType.Q4_K_M, 512).ToDictionary(t => t.Spec.Name, t => t.Type);
        plan["blk.1.attn_v.weight"].Should().Be(GgmlType.Q8_0);
        plan["blk.1.attn_k.weight"].Should().Be(GgmlType.Q8_0);
        plan["blk.1.attn_output.weight"].Should().Be(GgmlType.Q5_K);
        plan["blk.1.attn_q.weight"].Should().Be(GgmlType.Q4_K);
    }
}
