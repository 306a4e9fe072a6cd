using Engine.Backends;
using Engine.Backends.Cpu;
using Engine.Benchmarking;
using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Models;

/// <summary>A model split into stages (the layer offload of --gpu-layers, here with a CPU backend on each side so
/// the kernels are the same): the residual stream handed from one backend to the next and the KV cache split
/// between them must give exactly the logits of the whole model on one backend.</summary>
public class LayerSplitTests
{
    static string Fixture(string name) => Path.Combine(FixtureGoldenTests.FixtureFolder(name)!, name + ".gguf");
    static string Stories => TestPaths.Repo("models", "stories260K.gguf");

    static LoadedModel Open(string path, params int[] splitAt) => LoadedModel.Open(path, new ModelOptions
    {
        StageFactory = splitAt.Length == 0 ? null : (config, _) =>
        {
            int[] bounds = [0, .. splitAt, config.LayerCount];
            return bounds.Zip(bounds.Skip(1), (first, end) => new LayerStage(new CpuBackend(2), first, end - first)).ToArray();
        },
    });

    /// <summary>Logits of a 6-token prompt (every row) and of 3 decode steps after it.</summary>
    static float[] Run(LoadedModel model)
    {
        int vocab = model.Config.VocabSize;
        int[] prompt = [1, 15, 200, 7, 99, 3];
        using var cache = model.Model.CreateCache(16);
        var logits = new float[(prompt.Length + 3) * vocab];
        model.Model.Forward(prompt, 0, cache, logits.AsSpan(0, prompt.Length * vocab));
        for (int step = 0; step < 3; step++)
        {
            int row = prompt.Length + step;
            int next = LogitCompare.Argmax(logits.AsSpan((row - 1) * vocab, vocab));
            model.Model.Forward([next], row, cache, logits.AsSpan(row * vocab, vocab));
        }
        return logits;
    }

    [Theory]
    [InlineData("fx-llama-F32", new[] { 1 })]
    [InlineData("fx-qwen2-Q8_0", new[] { 1 })]   // q/k/v biases
    [InlineData("fx-qwen3moe-F16", new[] { 1 })] // experts routed on the second stage
    [InlineData("fx-llama-tied-F16", new[] { 1 })] // the output is the embedding, used by both ends
    [InlineData("stories260K", new[] { 2 })]
    [InlineData("stories260K", new[] { 1, 3, 4 })] // four stages
    public void A_split_model_gives_the_logits_of_the_whole_model(string name, int[] splitAt)
    {
        string path = name == "stories260K" ? Stories : Fixture(name);
        using var whole = Open(path);
        using var split = Open(path, splitAt);
        split.Model.Stages.Should().HaveCount(splitAt.Length + 1);
        Run(split).Should().Equal(Run(whole), "each stage runs the same kernels; only the residual stream changes hands");
    }

    [Fact]
    public void The_cache_is_split_by_stage_and_every_intermediate_stays_observable()
    {
        using var whole = Open(Stories);
        using var split = Open(Stories, 2);
        using var cache = split.Model.CreateCache(8);
        cache.Store.Pools.Select(p => p.Shape.Layers).Should().Equal(2, 3);
        cache.Store.BlockBytes.Should().Be(cache.Store.Pools.Sum(p => p.Shape.BlockBytes));
        using (var wholeCache = whole.Model.CreateCache(8)) cache.Store.BlockBytes.Should().Be(wholeCache.Store.BlockBytes);

        List<(string, int, float[])> Observed(LoadedModel model)
        {
            var seen = new List<(string, int, float[])>();
            model.Model.Observer = (name, layer, rows, width, values) => seen.Add((name, layer, values.ToArray()));
            var logits = new float[model.Config.VocabSize];
            using var observedCache = model.Model.CreateCache(8);
            model.Model.Forward([1, 2, 3], 0, observedCache, logits);
            return seen;
        }
        var fromSplit = Observed(split);
        var fromWhole = Observed(whole);
        fromSplit.Select(o => (o.Item1, o.Item2)).Should().Equal(fromWhole.Select(o => (o.Item1, o.Item2)));
        for (int i = 0; i < fromSplit.Count; i++) fromSplit[i].Item3.Should().Equal(fromWhole[i].Item3, fromSplit[i].Item1);
    }

    [Fact]
    public void Stages_must_cover_every_layer_once_in_order()
    {
        using var model = Open(Stories);
        var config = model.Config;
        var weights = model.Model.Weights;
        using var backend = new CpuBackend(1);
        LayerStage[][] bad =
        [
            [new(backend, 0, 2), new(backend, 3, 2)], // a gap
            [new(backend, 0, 3), new(backend, 2, 3)], // an overlap
            [new(backend, 0, 4)],                     // a layer left out
            [new(backend, 0, 0), new(backend, 0, 5)], // an empty stage
            [],
        ];
        foreach (var stages in bad)
            FluentActions.Invoking(() => new Llama(config, weights, stages)).Should().Throw<ArgumentException>();
    }

    [Fact]
    public void The_parts_of_a_split_hold_every_weight_once_and_the_bytes_per_token_add_up()
    {
        using var model = Open(Fixture("fx-qwen3moe-F16"));
        var w = model.Model.Weights;
        var first = w.Part(0, 1, embedding: true, output: false);
        var second = w.Part(1, 1, embedding: false, output: true);
        var parts = first.AllMatrices.Concat(second.AllMatrices).ToList();
        parts.Should().HaveSameCount(w.Matrices());
        parts.ToHashSet(ReferenceEqualityComparer.Instance).SetEquals(w.Matrices()).Should().BeTrue("each matrix is in exactly one part");
        (first.Vectors.Count + second.Vectors.Count).Should().Be(w.Vectors().Count() + (w.RopeFrequencyFactors is null ? 0 : 1),
            "only the RoPE factors (if any) go with both parts");
        (WeightTraffic.BytesPerToken(w, model.Config, 0, 1) + WeightTraffic.BytesPerToken(w, model.Config, 1, 1))
            .Should().Be(WeightTraffic.BytesPerToken(w, model.Config));
    }
}
