using Engine.Backends;
using Engine.Backends.Cpu;
using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Backends;

/// <summary>A KV cache is disposable: disposing it returns its memory, twice does nothing, and a disposed cache
/// refuses use with an <see cref="ObjectDisposedException"/> naming it (rather than a null reference or an index
/// error from its released arrays). A split model's cache disposes each stage's part.</summary>
public class KvCacheDisposalTests
{
    static string Stories => TestPaths.Repo("models", "stories260K.gguf");

    [Fact]
    public void A_disposed_cpu_pool_refuses_use_and_names_itself()
    {
        using var backend = new CpuBackend(1);
        var pool = backend.CreateKvPool(new KvPoolShape(2, 4, 2, 4, 4, KvElementType.F32));
        var k = backend.Allocate("k", 8);
        var v = backend.Allocate("v", 8);
        var q = backend.Allocate("q", 8);
        var output = backend.Allocate("out", 8);
        var batch = new ForwardBatch(2);
        batch.Add([0, 0], 0, [1], LogitsWanted.None);
        pool.Bytes.Should().Be(0, "a block takes memory when a token is first stored in it");
        backend.StoreKv(pool, 1, batch, k, v);
        backend.Attention(q, pool, 1, batch, 2, 2, 2, 2, output);
        pool.Bytes.Should().Be(2L * 2 * (4 + 4) * sizeof(float), "one block of 2 tokens x 2 layers is in use");

        pool.Dispose();
        pool.Dispose(); // a second disposal does nothing

        pool.IsDisposed.Should().BeTrue();
        pool.Bytes.Should().Be(0, "a disposed pool holds no memory");
        FluentActions.Invoking(() => backend.StoreKv(pool, 1, batch, k, v))
            .Should().Throw<ObjectDisposedException>().Which.ObjectName.Should().Be("KV pool (4 blocks x 2 tokens x 2 layers, F32)");
        FluentActions.Invoking(() => backend.Attention(q, pool, 1, batch, 2, 2, 2, 2, output))
            .Should().Throw<ObjectDisposedException>().WithMessage("*create a new one*");
    }

    [Fact]
    public void A_forward_pass_refuses_a_disposed_cache_before_computing_anything()
    {
        using var model = LoadedModel.Open(Stories, new ModelOptions { Threads = 1 });
        var logits = new float[model.Config.VocabSize];
        var cache = model.Model.CreateCache(8);
        model.Model.Forward([1, 2], 0, cache, logits);
        cache.Dispose();
        int embedded = 0;
        model.Model.Observer = (name, _, _, _, _) => { if (name == "inp_embd") embedded++; };
        FluentActions.Invoking(() => model.Model.Forward([3], 2, cache, logits)).Should().Throw<ObjectDisposedException>();
        embedded.Should().Be(0, "the cache is checked before the tokens are embedded");
    }

    [Fact]
    public void Disposing_a_split_cache_disposes_every_part()
    {
        using var model = LoadedModel.Open(Stories, new ModelOptions
        {
            StageFactory = (config, _) => [new LayerStage(new CpuBackend(1), 0, 2), new LayerStage(new CpuBackend(1), 2, config.LayerCount - 2)],
        });
        var logits = new float[model.Config.VocabSize];
        var cache = model.Model.CreateCache(8);
        cache.Store.Pools.Should().HaveCount(2);
        model.Model.Forward([1, 2], 0, cache, logits);
        long bytes = cache.Bytes;
        cache.Store.Pools.Sum(p => p.Bytes).Should().Be(bytes).And.BeGreaterThan(0);

        cache.Dispose();

        cache.Store.Pools.Should().OnlyContain(p => p.IsDisposed, "the store owns its pools");
        cache.Store.Pools.Sum(p => p.Bytes).Should().Be(0);
        FluentActions.Invoking(() => model.Model.Forward([3], 2, cache, logits)).Should().Throw<ObjectDisposedException>();
        var k = model.Model.Stages[1].Backend.Allocate("k", model.Config.KeyWidth);
        var batch = new ForwardBatch(cache.Store.BlockTokens);
        batch.Add([3], 2, cache.BlockTable, LogitsWanted.None);
        FluentActions.Invoking(() => model.Model.Stages[1].Backend.StoreKv(cache.Store.Pools[1], 0, batch, k, k))
            .Should().Throw<ObjectDisposedException>("a part is disposed as well, not only the whole");
    }
}
