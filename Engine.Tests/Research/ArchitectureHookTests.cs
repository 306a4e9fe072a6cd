using Engine.Tests.Support;
using FluentAssertions;
using Xunit;

namespace Engine.Tests.Research;

/// <summary>The hooks on the other architectures in the repository's fixtures: Qwen3 (per-head q/k norms, grouped-query
/// attention) and the MoE fixtures, whose router logits a hook can edit to change the experts chosen.</summary>
public sealed class ArchitectureHookTests
{
    static Model Load(string name) => Model.Load(TestPaths.Repo("Engine.Tests", "Fixtures", name + ".gguf"),
        new ModelLoadOptions { KvCacheType = KvCacheType.F32 });

    static readonly int[] Tokens = [1, 15, 300, 7, 42, 99, 5, 250, 17, 3, 77, 120];

    [Theory]
    [InlineData("fx-qwen3-F32")]
    [InlineData("fx-qwen3moe-Q8_0")]
    [InlineData("fx-qwen2moe-Q8_0")]
    [InlineData("fx-llamamoe-Q8_0")]
    public async Task Hooks_that_change_nothing_leave_the_logits_bit_identical_and_patterns_reproduce_the_attention_output(string fixture)
    {
        using var model = Load(fixture);
        var baseline = await model.GetLogitsAsync(Tokens);
        var seen = new HashSet<string>();
        using (model.AddHook("*", (context, _) => { if (context.Name is not ("kq" or "kq_soft_max")) lock (seen) seen.Add(context.Name); }))
        {
            // "*" includes the attention scores, whose explicit path rounds differently: compare it within rounding.
            var hooked = await model.GetLogitsAsync(Tokens);
            for (int i = 0; i < hooked.Length; i++) hooked[i].Should().BeApproximately(baseline[i], 1e-3f);
        }
        seen.Should().Contain(["l_in", "Qcur", "kqv_out", "attn_out", "l_out", "result_output"]);
        if (model.Info.ExpertCount > 0) seen.Should().Contain(["ffn_moe_logits", "ffn_moe_topk", "ffn_moe_out"]);
        else seen.Should().Contain("ffn_swiglu");
        using (model.AddHook("l_out,attn_out,ffn_out,result_output" + (model.Info.ExpertCount > 0 ? ",ffn_moe_logits,ffn_moe_out" : ",ffn_swiglu"), (_, _) => { }))
            (await model.GetLogitsAsync(Tokens)).Should().Equal(baseline);

        var c = model.Network.Config;
        var cache = (await model.RunWithCacheAsync([Tokens], "kq_soft_max.0,Vcur.0,kqv_out.0"))[0];
        var pattern = cache["kq_soft_max.0"];
        int t = Tokens.Length, group = c.HeadCount / c.KvHeadCount;
        for (int h = 0; h < c.HeadCount; h++)
            for (int i = 0; i < t; i++)
                for (int d = 0; d < c.ValueHeadDim; d++)
                {
                    double expected = 0;
                    for (int j = 0; j <= i; j++) expected += pattern.Values[(h * t + i) * t + j] * cache["Vcur.0"].Row(j)[h / group * c.ValueHeadDim + d];
                    cache["kqv_out.0"].Row(i)[h * c.ValueHeadDim + d].Should().BeApproximately((float)expected, 1e-4f);
                }
    }

    [Theory]
    [InlineData("fx-qwen3moe-Q8_0")]
    [InlineData("fx-qwen2moe-Q8_0")]
    public async Task Editing_the_router_logits_changes_the_experts_chosen_and_the_output(string fixture)
    {
        using var model = Load(fixture);
        var baseline = (await model.RunWithCacheAsync([Tokens], "ffn_moe_topk.0"))[0];
        int experts = model.Info.ExpertCount, k = model.Info.ExpertsPerToken;
        int favourite = experts - 1;
        using var hook = model.AddHook("ffn_moe_logits.0", (context, logits) =>
        {
            context.Width.Should().Be(experts);
            for (int r = 0; r < context.Rows; r++) logits[r * experts + favourite] = 1e4f;
        });
        var steered = (await model.RunWithCacheAsync([Tokens], "ffn_moe_topk.0"))[0];
        var chosen = steered["ffn_moe_topk.0"];
        chosen.Shape.Should().Equal(Tokens.Length, k);
        for (int r = 0; r < Tokens.Length; r++) chosen.Row(r)[0].Should().Be(favourite, "the edited logit wins the routing");
        baseline["ffn_moe_topk.0"].Values.Should().NotEqual(chosen.Values);
        steered.Logits.Should().NotEqual(baseline.Logits!);
    }

    [Theory]
    [InlineData("fx-qwen3moe-Q8_0")]
    [InlineData("fx-qwen3-F32")]
    public async Task A_batch_gives_each_prompt_its_values_alone(string fixture)
    {
        using var model = Load(fixture);
        int[][] prompts = [Tokens, [1, 8, 9], [.. Enumerable.Range(2, 70)]];
        const string points = "l_out,ffn_out.1,result_output";
        var together = await model.RunWithCacheAsync(prompts, points);
        for (int p = 0; p < prompts.Length; p++)
        {
            var alone = (await model.RunWithCacheAsync([prompts[p]], points))[0];
            foreach (var (name, activation) in alone) together[p][name].Values.Should().Equal(activation.Values, $"{name} of prompt {p}");
        }
    }
}
