using System.IO.Compression;
using System.Runtime.InteropServices;
using Engine.Formats.Safetensors;
using Engine.Tests.Support;
using FluentAssertions;
using Xunit;

namespace Engine.Tests.Research;

/// <summary>The research hooks on the shipped model: a hook that changes nothing changes nothing, patching and ablation do
/// what their definitions say, the logit lens ends at the logits, attention patterns are distributions whose weighted
/// values are the attention output, and a batch or a generation records what a plain run over the same tokens gives.</summary>
public sealed class HookTests : IDisposable
{
    readonly Model _model = Model.Load(TestPaths.Repo("models", "stories260K.gguf"));
    readonly int[] _clean, _corrupted;

    public HookTests()
    {
        _clean = [.. _model.Tokenize("Once upon a time there was a little girl named Lily. She loved to play")];
        _corrupted = (int[])_clean.Clone();
        _corrupted[3] = _model.Tokenize("dog", addSpecialTokens: false)[0];
        _corrupted.Should().NotEqual(_clean);
    }

    public void Dispose() => _model.Dispose();

    const string EveryRowPoint = "inp_embd,l_in,attn_norm,Qcur,Kcur,Vcur,kqv_out,attn_out,ffn_inp,ffn_norm,ffn_gate,ffn_up,ffn_swiglu,ffn_out,l_out,result_norm,result_output";

    [Fact]
    public async Task A_hook_that_changes_nothing_leaves_the_logits_bit_identical()
    {
        var baseline = await _model.GetLogitsAsync(_clean);
        var seen = new HashSet<string>();
        using (_model.AddHook(EveryRowPoint, (context, values) => { lock (seen) seen.Add(context.Name); }))
        {
            var hooked = await _model.GetLogitsAsync(_clean);
            hooked.Should().Equal(baseline);
        }
        seen.Should().BeEquivalentTo(EveryRowPoint.Split(','));
    }

    [Fact]
    public async Task Patching_a_residual_of_the_corrupted_run_with_the_clean_runs_values_reproduces_the_clean_logits_exactly()
    {
        var clean = (await _model.RunWithCacheAsync([_clean], "l_out.2"))[0];
        var corrupted = await _model.GetLogitsAsync(_corrupted);
        corrupted.Should().NotEqual(clean.Logits!, "the corruption changes the model's output");
        using (_model.Patch("l_out.2", clean))
            (await _model.GetLogitsAsync(_corrupted)).Should().Equal(clean.Logits!);
        // Patching only the corrupted position and everything before it is the same here (later rows are equal anyway).
        using (_model.Patch("blocks.2.hook_resid_post".Replace("blocks.2.hook_resid_post", "l_out.2"), clean, Enumerable.Range(0, 4).ToList()))
            (await _model.GetLogitsAsync(_corrupted)).Should().NotEqual(corrupted);
    }

    [Fact]
    public async Task Ablating_a_head_or_a_neuron_changes_the_logits_and_disposing_the_ablation_restores_them()
    {
        var baseline = await _model.GetLogitsAsync(_clean);
        using (_model.AblateHeads(1, [0]))
            (await _model.GetLogitsAsync(_clean)).Should().NotEqual(baseline);
        (await _model.GetLogitsAsync(_clean)).Should().Equal(baseline);

        var cache = (await _model.RunWithCacheAsync([_clean], "kqv_out.1,ffn_swiglu.3"))[0];
        using (_model.AblateHeads(1, [0, 3], cache.MeanOverPositions("kqv_out.1")))
            (await _model.GetLogitsAsync(_clean)).Should().NotEqual(baseline);
        using (_model.AblateNeurons(3, [5, 17]))
            (await _model.GetLogitsAsync(_clean)).Should().NotEqual(baseline);
        (await _model.GetLogitsAsync(_clean)).Should().Equal(baseline);
        FluentActions.Invoking(() => _model.AblateHeads(1, [99])).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public async Task Zero_ablating_a_head_zeroes_exactly_its_part_of_the_attention_output()
    {
        int heads = 8, headDim = _model.Info.EmbeddingLength / heads;
        using var ablation = _model.AblateHeads(2, [5]);
        var cache = (await _model.RunWithCacheAsync([_clean], "kqv_out.2"))[0];
        var z = cache["kqv_out.2"];
        for (int t = 0; t < _clean.Length; t++)
            for (int h = 0; h < heads; h++)
            {
                var part = z.Row(t).Slice(h * headDim, headDim).ToArray();
                if (h == 5) part.Should().OnlyContain(v => v == 0);
                else part.Should().Contain(v => v != 0);
            }
    }

    [Fact]
    public async Task The_logit_lens_at_the_last_layer_equals_the_models_logits()
    {
        var logits = await _model.GetLogitsAsync(_clean);
        var lens = await _model.LogitLensAsync(_clean);
        lens.Should().HaveCount(_model.Info.LayerCount);
        lens[^1].Should().Equal(logits);
        lens[0].Should().NotEqual(logits);
    }

    [Fact]
    public async Task Attention_patterns_are_causal_distributions_and_pattern_times_V_is_the_attention_output()
    {
        var cache = (await _model.RunWithCacheAsync([_clean], "blocks.1.attn.hook_pattern,blocks.1.attn.hook_attn_scores,Vcur.1,kqv_out.1"))[0];
        var pattern = cache["kq_soft_max.1"];
        int heads = 8, kvHeads = 4, tokens = _clean.Length, headDim = _model.Info.EmbeddingLength / heads;
        pattern.Shape.Should().Equal(heads, tokens, tokens);
        cache["kq.1"].Shape.Should().Equal(heads, tokens, tokens);
        var v = cache["Vcur.1"];
        var z = cache["kqv_out.1"];
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < tokens; i++)
            {
                var row = pattern.Values.AsSpan((h * tokens + i) * tokens, tokens);
                double sum = 0;
                for (int j = 0; j < tokens; j++) sum += row[j];
                sum.Should().BeApproximately(1, 1e-5);
                if (i < tokens - 1) row[(i + 1)..].ToArray().Should().OnlyContain(p => p == 0, "no position attends to a later one");
                float.IsNegativeInfinity(cache["kq.1"].Values[(h * tokens + i) * tokens + tokens - 1]).Should().Be(i < tokens - 1);
                for (int d = 0; d < headDim; d++)
                {
                    double expected = 0;
                    for (int j = 0; j <= i; j++) expected += row[j] * v.Row(j)[h / (heads / kvHeads) * headDim + d];
                    z.Row(i)[h * headDim + d].Should().BeApproximately((float)expected, 1e-5f);
                }
            }

        // The explicit path (formed for the pattern's hook) agrees with the fast tiled path.
        var fast = (await _model.RunWithCacheAsync([_clean], "kqv_out.1"))[0]["kqv_out.1"];
        MaxDifference(fast.Values, z.Values).Should().BeLessThan(1e-5f);
    }

    [Fact]
    public async Task Editing_the_attention_pattern_changes_what_is_summed()
    {
        var baseline = await _model.GetLogitsAsync(_clean);
        // Every query attends to the first position only.
        using var hook = _model.AddHook("kq_soft_max.0", (context, values) =>
        {
            for (int r = 0; r < context.Heads * context.Rows; r++)
            {
                var row = values.Slice(r * context.Width, context.Width);
                row.Clear();
                row[0] = 1;
            }
        });
        var cache = (await _model.RunWithCacheAsync([_clean], "kqv_out.0,Vcur.0"))[0];
        int heads = 8, headDim = _model.Info.EmbeddingLength / heads;
        for (int t = 0; t < _clean.Length; t++)
            for (int h = 0; h < heads; h++)
                cache["kqv_out.0"].Row(t).Slice(h * headDim, headDim).ToArray()
                    .Should().Equal(cache["Vcur.0"].Row(0).Slice(h / 2 * headDim, headDim).ToArray());
        cache.Logits.Should().NotEqual(baseline);
    }

    [Fact]
    public async Task A_batch_of_prompts_gives_each_prompt_the_values_it_gives_alone()
    {
        int[][] prompts = [_clean, _corrupted, [.. _model.Tokenize("The sun")], [.. _model.Tokenize(string.Concat(Enumerable.Repeat("Tom and Sam went to the park. ", 12)))]];
        prompts[^1].Length.Should().BeGreaterThan(64, "a prompt longer than one step's rows is split over steps");
        const string points = "l_out,kqv_out,ffn_swiglu.2,kq_soft_max.3,result_output";
        var together = await _model.RunWithCacheAsync(prompts, points);
        for (int p = 0; p < prompts.Length; p++)
        {
            var alone = (await _model.RunWithCacheAsync([prompts[p]], points))[0];
            together[p].Keys.Should().BeEquivalentTo(alone.Keys);
            foreach (var (name, activation) in alone)
            {
                together[p][name].Shape.Should().Equal(activation.Shape, name);
                together[p][name].Values.Should().Equal(activation.Values, $"{name} of prompt {p}");
            }
            together[p].Logits.Should().Equal(alone.Logits!);
        }
    }

    [Fact]
    public async Task A_cache_recorded_during_generation_equals_a_recompute_over_the_full_sequence()
    {
        // An F32 KV cache, as research runs use: the recompute then differs only by the rounding of decode rows.
        using var model = Model.Load(TestPaths.Repo("models", "stories260K.gguf"), new ModelLoadOptions { KvCacheType = KvCacheType.F32 });
        using var session = model.CreateSession();
        const string points = "l_out.1,kq_soft_max.2,ffn_out.4";
        var phases = new HashSet<ForwardPhase>();
        using var phaseHook = session.AddHook("l_out.0", (context, _) => { lock (phases) phases.Add(context.Phase); });
        ActivationCache recorded;
        using (var recorder = ActivationCache.Record(session, points))
        {
            await foreach (var _ in session.GenerateAsync(_clean, GenerateOptions.Greedy with { MaxTokens = 12 })) { }
            recorded = recorder.ToCache(session.Tokens);
        }
        phases.Should().BeEquivalentTo([ForwardPhase.Prompt, ForwardPhase.Decode]);
        var tokens = session.Tokens.ToArray();
        tokens.Length.Should().Be(_clean.Length + 11, "the last generated token is not read until the next generation");
        var full = (await model.RunWithCacheAsync([tokens], points))[0];
        foreach (var name in points.Split(','))
        {
            recorded[name].Shape.Should().Equal(full[name].Shape, name);
            MaxDifference(recorded[name].Values, full[name].Values).Should().BeLessThan(1e-5f, name);
        }
    }

    [Fact]
    public async Task A_session_hook_sees_only_its_own_session_and_an_edit_of_the_logits_steers_the_next_token()
    {
        using var mine = _model.CreateSession();
        using var other = _model.CreateSession();
        var sequences = new HashSet<long>();
        int forced = _model.Tokenize("dragon", addSpecialTokens: false)[0];
        using var hook = mine.AddHook("result_output", (context, logits) =>
        {
            lock (sequences) sequences.Add(context.Sequence);
            for (int r = 0; r < context.Rows; r++) logits[r * context.Width + forced] = 1e4f;
        });
        var options = GenerateOptions.Greedy with { MaxTokens = 3 };
        var mineTokens = new List<int>();
        var otherTokens = new List<int>();
        await Task.WhenAll(
            Task.Run(async () => { await foreach (var t in mine.GenerateAsync(_clean, options)) mineTokens.Add(t.Id); }),
            Task.Run(async () => { await foreach (var t in other.GenerateAsync(_clean, options)) otherTokens.Add(t.Id); }));
        sequences.Should().Equal(mine.Id);
        mineTokens.Should().OnlyContain(t => t == forced);
        otherTokens.Should().NotContain(forced);
    }

    [Theory]
    [InlineData("l_out", 5)]
    [InlineData("l_out.3", 1)]
    [InlineData("blocks.3.hook_resid_post", 1)]
    [InlineData("blocks.*.attn.hook_pattern", 5)]
    [InlineData("ffn_*.2", 16)]
    [InlineData("hook_embed,ln_final.hook_normalized", 2)]
    [InlineData("l_out.1, kq_soft_max.*", 6)]
    public void Patterns_expand_to_points(string pattern, int count)
    {
        var points = Engine.Models.HookPoints.Expand(pattern, 5);
        points.Should().HaveCount(count);
        if (pattern.StartsWith("blocks.3")) points.Should().Equal(("l_out", 3));
    }

    [Theory]
    [InlineData("l_outt")]
    [InlineData("l_out.5")]
    [InlineData("inp_embd.0")]
    [InlineData("blocks.x.hook_resid_post")]
    [InlineData("blocks.1.hook_nothing")]
    [InlineData("")]
    public void Bad_patterns_are_refused_with_the_list_of_points(string pattern)
    {
        FluentActions.Invoking(() => _model.AddHook(pattern, (_, _) => { })).Should().Throw<ArgumentException>()
            .Which.Message.Should().ContainAny("picks nothing", "layer", "no hook point", "not a layer");
    }

    [Fact]
    public async Task A_cache_saves_as_npz_and_safetensors_that_read_back()
    {
        var cache = (await _model.RunWithCacheAsync([_clean], "l_out.1,kq_soft_max.0"))[0];
        var dir = Directory.CreateTempSubdirectory("hooks-").FullName;
        try
        {
            var st = Path.Combine(dir, "run.safetensors");
            cache.Save(st);
            using (var file = SafetensorsFile.Open(st))
            {
                var l1 = file.Tensors.Single(t => t.Name == "l_out.1");
                l1.Shape.Should().Equal(_clean.Length, _model.Info.EmbeddingLength);
                MemoryMarshal.Cast<byte, float>(file.GetBytes("l_out.1")).ToArray().Should().Equal(cache["l_out.1"].Values);
                MemoryMarshal.Cast<byte, int>(file.GetBytes("tokens")).ToArray().Should().Equal(_clean);
                file.Tensors.Select(t => t.Name).Should().Contain(["kq_soft_max.0", "logits"]);
            }

            var npz = Path.Combine(dir, "run.npz");
            cache.Save(npz);
            using (var zip = ZipFile.OpenRead(npz))
            {
                zip.Entries.Select(e => e.Name).Should().BeEquivalentTo(["tokens.npy", "l_out.1.npy", "kq_soft_max.0.npy", "logits.npy"]);
                using var stream = zip.GetEntry("kq_soft_max.0.npy")!.Open();
                var bytes = new MemoryStream();
                stream.CopyTo(bytes);
                var data = bytes.ToArray();
                int headerLength = BitConverter.ToUInt16(data, 8);
                var header = System.Text.Encoding.ASCII.GetString(data, 10, headerLength);
                header.Should().Contain("'descr': '<f4'").And.Contain($"'shape': (8, {_clean.Length}, {_clean.Length})");
                ((10 + headerLength) % 64).Should().Be(0);
                MemoryMarshal.Cast<byte, float>(data.AsSpan(10 + headerLength)).ToArray().Should().Equal(cache["kq_soft_max.0"].Values);
            }
            FluentActions.Invoking(() => cache.Save(Path.Combine(dir, "run.txt"))).Should().Throw<ArgumentException>();
            Directory.GetFiles(dir).Should().HaveCount(2, "a refused save leaves nothing behind");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    static float MaxDifference(float[] a, float[] b)
    {
        a.Length.Should().Be(b.Length);
        float max = 0;
        for (int i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }
}
