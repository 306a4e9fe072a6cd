using Engine.Formats;
using Engine.Backends.Cpu;
using Engine.Formats.Gguf;
using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Models;

/// <summary>What a mixture-of-experts layer reads: only the chosen experts' weights, each once per batch; and
/// the router arithmetic (softmax, top-k with llama.cpp's tie order, renormalization).</summary>
public class ExpertRoutingTests
{
    sealed class RecordedModel : IDisposable
    {
        public readonly GgufFile File;
        public readonly Llama Model;
        public readonly RecordingBackend Backend;

        public RecordedModel(string fixture = "fx-qwen3moe-Q8_0")
        {
            var folder = FixtureGoldenTests.FixtureFolder(fixture)!;
            File = GgufFile.Open(Path.Combine(folder, fixture + ".gguf"));
            var config = GgufModelConfig.Read(File);
            Backend = new RecordingBackend(new CpuBackend(2));
            Model = new Llama(config, LlamaWeights.Load(config, new GgufTensorSource(File)), Backend);
        }

        public MixtureOfExpertsWeights Layer(int l) => (MixtureOfExpertsWeights)Model.Weights.Layers[l].FeedForward;

        /// <summary>Each expert matrix of layer l (by reference) and the expert it belongs to.</summary>
        public Dictionary<WeightMatrix, int> ExpertOf(int l)
        {
            var map = new Dictionary<WeightMatrix, int>(ReferenceEqualityComparer.Instance);
            var layer = Layer(l);
            for (int e = 0; e < layer.ExpertCount; e++)
            {
                map[layer.Gate[e]] = e;
                map[layer.Up[e]] = e;
                map[layer.Down[e]] = e;
            }
            return map;
        }

        public void Dispose() { Model.Dispose(); File.Dispose(); }
    }

    static readonly int[] Prompt = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 280, 294, 263, 415, 414, 397, 355, 267, 337, 322, 265, 298, 295, 418];

    [Theory]
    [InlineData("fx-qwen3moe-Q8_0")]
    [InlineData("fx-qwen2moe-Q8_0")]
    [InlineData("fx-llamamoe-Q8_0")]
    public void A_decoded_token_multiplies_only_its_chosen_experts_weights(string fixture)
    {
        using var m = new RecordedModel(fixture);
        using var cache = m.Model.CreateCache(Prompt.Length + 1);
        var logits = new float[m.Model.Config.VocabSize];
        m.Model.Forward(Prompt, 0, cache, logits);

        var chosen = new Dictionary<int, int[]>();
        m.Model.Observer = (name, layer, rows, width, values) =>
        {
            if (name == "ffn_moe_topk") chosen[layer] = values.ToArray().Select(v => (int)v).ToArray();
        };
        m.Backend.MatMuls.Clear();
        m.Model.Forward([LogitCompare.Argmax(logits)], Prompt.Length, cache, logits);

        int k = m.Model.Config.ExpertsPerToken;
        for (int l = 0; l < m.Model.Config.LayerCount; l++)
        {
            chosen[l].Should().HaveCount(k).And.OnlyHaveUniqueItems();
            var expertOf = m.ExpertOf(l);
            var expertCalls = m.Backend.MatMuls.Where(call => expertOf.ContainsKey(call.Weights)).ToList();
            expertCalls.Select(call => expertOf[call.Weights]).Distinct().Should().BeEquivalentTo(chosen[l], $"layer {l} reads only the chosen experts");
            foreach (int e in chosen[l])
            {
                var expert = m.Layer(l).Expert(e);
                // Gate, up and down of the chosen expert, each exactly once, for the one token.
                expertCalls.Where(call => expertOf[call.Weights] == e).Select(call => call.Weights)
                    .Should().Equal(expert.Gate, expert.Up, expert.Down);
                expertCalls.Where(call => expertOf[call.Weights] == e).Should().OnlyContain(call => call.Rows == 1);
            }
            // qwen2moe's shared expert and its gate run for every token, beside the routed ones.
            if (m.Layer(l).SharedExpert is { } shared)
                m.Backend.MatMuls.Select(call => call.Weights).Should()
                    .Contain([m.Layer(l).SharedExpertGate!, shared.Gate, shared.Up, shared.Down]);
        }
    }

    [Fact]
    public void Expert_matrices_are_disjoint_byte_ranges_of_the_stacked_tensor()
    {
        using var m = new RecordedModel();
        for (int l = 0; l < m.Model.Config.LayerCount; l++)
            foreach (var (kind, stack) in new[] { ("gate", m.Layer(l).Gate), ("up", m.Layer(l).Up), ("down", m.Layer(l).Down) })
            {
                var stacked = m.File.GetTensor($"blk.{l}.ffn_{kind}_exps.weight");
                var experts = stack.Experts;
                stack.Name.Should().Be($"blk.{l}.ffn_{kind}_exps.weight");
                long size = stacked.ByteSize / experts.Count;
                for (int e = 0; e < experts.Count; e++)
                {
                    // Expert e is the e-th slice of the file's bytes, in place: nothing copied, nothing shared.
                    experts[e].View.FileOffset.Should().Be(stacked.FileOffset + e * size, $"blk.{l} {kind} expert {e}");
                    experts[e].View.ByteSize.Should().Be(size);
                    experts[e].Type.Should().Be(stacked.Type);
                }
            }
    }

    [Theory]
    [InlineData("fx-qwen3moe-Q8_0")]
    [InlineData("fx-llamamoe-Q8_0")]
    public void A_prompt_batch_reads_each_expert_once_per_layer(string fixture)
    {
        using var m = new RecordedModel(fixture);
        using var cache = m.Model.CreateCache(Prompt.Length);
        var logits = new float[m.Model.Config.VocabSize];
        m.Model.Forward(Prompt, 0, cache, logits);

        int k = m.Model.Config.ExpertsPerToken;
        for (int l = 0; l < m.Model.Config.LayerCount; l++)
        {
            var expertOf = m.ExpertOf(l);
            var calls = m.Backend.MatMuls.Where(call => expertOf.ContainsKey(call.Weights)).ToList();
            calls.GroupBy(call => call.Weights, ReferenceEqualityComparer.Instance).Should().OnlyContain(g => g.Count() == 1, "an expert's weights are read once for all its tokens");
            // Every token reaches k experts: the gate matmuls' rows add up to tokens x k.
            var gates = m.Layer(l).Gate.Experts.ToHashSet(ReferenceEqualityComparer.Instance);
            calls.Where(call => gates.Contains(call.Weights)).Sum(call => call.Rows).Should().Be(Prompt.Length * k);
        }
    }

    /// <summary>A backend multiplies a layer's experts as one stack, so they must agree in shape and type; a file whose
    /// per-expert tensors do not is refused at load with the tensor named, not multiplied wrongly.</summary>
    [Fact]
    public void Experts_of_one_layer_must_share_shape_and_type()
    {
        var f32 = Engine.Tests.Gpu.TestWeights.Matrix("blk.0.ffn_gate.0.weight", GgmlType.F32, 4, 8, new float[32]);
        var f16 = Engine.Tests.Gpu.TestWeights.Matrix("blk.0.ffn_gate.1.weight", GgmlType.F16, 4, 8, new float[32]);
        var wide = Engine.Tests.Gpu.TestWeights.Matrix("blk.0.ffn_gate.2.weight", GgmlType.F32, 4, 16, new float[64]);
        new ExpertMatrices("blk.0.ffn_gate_exps.weight", [f32, f32]).Rows.Should().Be(4);
        foreach (var odd in new[] { f16, wide })
            FluentActions.Invoking(() => new ExpertMatrices("blk.0.ffn_gate_exps.weight", [f32, odd]))
                .Should().Throw<ModelFormatException>().Where(e => e.Message.Contains(odd.Name) && e.Message.Contains("one shape and type"));
    }

    [Fact]
    public void Softmax_probabilities_sum_to_one_and_keep_the_order()
    {
        float[] logits = [1f, 3f, -2f, 3.5f, 100f, -100f];
        var p = new float[logits.Length];
        ExpertRouter.Probabilities(logits, ExpertGating.Softmax, p);
        p.Sum().Should().BeApproximately(1f, 1e-6f);
        p[4].Should().BeApproximately(1f, 1e-6f); // a huge logit does not overflow
        p[3].Should().BeGreaterThan(p[1]);
        p[5].Should().BeGreaterThanOrEqualTo(0);
    }

    [Fact]
    public void Top_k_is_descending_and_ties_keep_the_lower_expert_first()
    {
        float[] p = [0.2f, 0.3f, 0.3f, 0.1f, 0.3f];
        var chosen = new int[3];
        ExpertRouter.TopK(p, chosen);
        chosen.Should().Equal(1, 2, 4);
        var two = new int[2];
        ExpertRouter.TopK([0.1f, 0.05f, 0.6f, 0.25f], two);
        two.Should().Equal(2, 3);
    }

    [Fact]
    public void Weights_are_the_chosen_probabilities_renormalized_when_asked()
    {
        float[] p = [0.1f, 0.05f, 0.6f, 0.25f];
        int[] chosen = [2, 3];
        var raw = new float[2];
        ExpertRouter.Weights(p, chosen, normalize: false, raw);
        raw.Should().Equal(0.6f, 0.25f);
        var normalized = new float[2];
        ExpertRouter.Weights(p, chosen, normalize: true, normalized);
        normalized[0].Should().BeApproximately(0.6f / 0.85f, 1e-7f);
        normalized.Sum().Should().BeApproximately(1f, 1e-6f);

        // A vanishing sum is clamped (llama.cpp: the smallest normal F16), not divided by.
        var tiny = new float[1];
        ExpertRouter.Weights([1e-9f, 0f], [0], normalize: true, tiny);
        tiny[0].Should().BeApproximately(1e-9f / 6.103515625e-5f, 1e-12f);
    }
}
