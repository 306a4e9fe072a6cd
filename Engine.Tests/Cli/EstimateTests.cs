using System.Text.Json;
using Engine.Backends.Cpu;
using Engine.Benchmarking;
using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Models;
using Engine.Planning;
using Engine.Tests.Store;
using Engine.Tests.Support;

namespace Engine.Tests.Cli;

/// <summary>`engine estimate`: its parts against what the engine really allocates when it loads the same model with the
/// same options, its JSON, and the header read from a hub by range requests.</summary>
public sealed class EstimateTests : IDisposable
{
    static readonly string Stories = TestPaths.Repo("models", "stories260K.gguf");
    readonly List<string> _temp = [];

    public void Dispose()
    {
        foreach (var path in _temp)
            if (File.Exists(path)) File.Delete(path);
    }

    /// <summary>Loads the model, runs a prompt of more than one full batch (so the kernels' scratch grows to its
    /// size), and compares every part of the estimate with the loaded model's own counts.</summary>
    static async Task EstimateMatchesTheLoadedModel(string path, int threads)
    {
        const int context = 256;
        using var file = GgufFile.Open(path);
        var estimate = MemoryEstimate.For(file, new EstimateOptions { ContextLength = context, ParallelSequences = 1, Threads = threads });

        using var model = Model.Load(path, new ModelLoadOptions { ContextLength = context, ParallelSequences = 1, Threads = threads });
        var prompt = Enumerable.Range(0, 100).Select(i => 1 + i * 7 % (model.Info.VocabularySize - 1)).ToArray();
        using (var session = model.CreateSession())
            await foreach (var _ in session.GenerateAsync(prompt, GenerateOptions.Greedy with { MaxTokens = 1 })) { }

        var store = model.Scheduler.Store;
        estimate.KvBlocks.Should().Be(store.Blocks);
        estimate.KvBytes.Should().Be(store.Blocks * store.BlockBytes, "the KV pool counted full");

        var backend = (CpuBackend)model.Network.Backend;
        var config = model.Network.Config;
        (StageActivations.Floats(config, model.Network.MaxBatch, computesLogits: true) * sizeof(float))
            .Should().Be(backend.ActivationBytes, "the activations are the buffers the backend handed out");
        MemoryEstimate.CpuKernelScratchBytes(config, file.Tensors, model.Network.MaxBatch, threads)
            .Should().Be(backend.KernelScratchBytes, "the matmul's quantized activations and the attention scratch after a full batch");

        // The loader counts matrices' file bytes and vectors as float32; the estimate adds the vectors' mapped bytes and
        // counts repacked matrices by their copies.
        long vectorsInFile = file.Tensors.Where(t => t.Shape.Count == 1).Sum(t => t.ByteSize);
        long repackedInFile = file.Tensors.Where(t => t.Shape.Count >= 2 && Engine.Quantization.Repacked.RepackedFormats.For(t.Type, (int)t.Shape[1], (int)t.Shape[0]) is not null
            && t.Name != "token_embd.weight").Sum(t => t.ByteSize);
        estimate.WeightsBytes.Should().Be(model.Info.WeightBytes + vectorsInFile - repackedInFile + backend.RepackedBytes);

        estimate.WeightBytesPerToken.Should().Be(WeightTraffic.BytesPerToken(model.Network.Weights, config));
    }

    [Fact]
    public Task Estimate_of_the_default_model_is_what_loading_it_allocates() => EstimateMatchesTheLoadedModel(Stories, threads: 2);

    [SharedFact]
    public Task Estimate_of_a_repacked_quantized_fixture_is_what_loading_it_allocates() =>
        EstimateMatchesTheLoadedModel(TestPaths.Shared("fixtures", "fx-llama-Q4_K.gguf")!, threads: 2);

    [SharedFact]
    public Task Estimate_of_a_mixture_of_experts_fixture_is_what_loading_it_allocates() =>
        EstimateMatchesTheLoadedModel(TestPaths.Shared("fixtures", "fx-qwen3moe-F16.gguf")!, threads: 3);

    [Fact]
    public void Default_kv_pool_is_sized_for_the_parallel_sequences_as_the_loader_sizes_it()
    {
        using var file = GgufFile.Open(Stories);
        var estimate = MemoryEstimate.For(file, new EstimateOptions { ParallelSequences = 3, KvType = Engine.Backends.KvElementType.Q8_0 });
        using var model = Model.Load(Stories, new ModelLoadOptions { ParallelSequences = 3, KvCacheType = KvCacheType.Q8_0 });
        estimate.Context.Should().Be(model.Info.ContextLength);
        estimate.KvBlocks.Should().Be(model.Scheduler.Store.Blocks);
        estimate.KvBytes.Should().Be(model.Scheduler.Store.Blocks * model.Scheduler.Store.BlockBytes);
    }

    static JsonElement Json(CliRunner.Result r)
    {
        r.ExitCode.Should().Be(0, r.Stderr);
        return JsonDocument.Parse(r.Stdout).RootElement.Clone();
    }

    [Fact]
    public void Json_gives_the_parts_in_bytes_and_they_add_up()
    {
        var root = Json(CliRunner.Run("estimate", "--model", Stories, "--ctx", "256", "--parallel", "2", "--bandwidth", "10", "--json"));
        long weights = root.GetProperty("weights_bytes").GetInt64(), kv = root.GetProperty("kv_bytes").GetInt64();
        long scratch = root.GetProperty("scratch_bytes").GetInt64(), overhead = root.GetProperty("overhead_bytes").GetInt64();
        root.GetProperty("total_bytes").GetInt64().Should().Be(weights + kv + scratch + overhead);
        weights.Should().BePositive();
        scratch.Should().BePositive();
        overhead.Should().BePositive();
        root.GetProperty("context").GetInt32().Should().Be(256);
        root.GetProperty("kv_tokens").GetInt64().Should().Be(512, "two sequences of 256 tokens");
        var devices = root.GetProperty("devices").EnumerateArray().ToList();
        devices.Should().ContainSingle();
        devices[0].GetProperty("device").GetString().Should().Be("cpu");
        devices[0].GetProperty("weights_bytes").GetInt64().Should().Be(weights);
        root.GetProperty("memory_bandwidth_bytes_per_second").GetDouble().Should().Be(10e9);
        double tg = root.GetProperty("tg_tokens_per_second").GetDouble();
        tg.Should().BeLessThanOrEqualTo(10e9 / root.GetProperty("weight_bytes_per_token").GetInt64(), "at most the bandwidth ceiling");
        root.GetProperty("tg_full_context_tokens_per_second").GetDouble().Should().BeLessThan(tg, "a full cache is read too");
        root.GetProperty("pp512_tokens_per_second").GetDouble().Should().BePositive();
    }

    [Fact]
    public void Gpu_layers_that_fit_are_the_most_whose_device_share_fits_the_given_memory()
    {
        string[] common = ["estimate", "--model", Stories, "--ctx", "256", "--parallel", "1", "--bandwidth", "10", "--device", "cuda", "--json"];
        var three = Json(CliRunner.Run([.. common, "--gpu-layers", "3", "--device-memory", "1GiB"]));
        var devices = three.GetProperty("devices").EnumerateArray().ToList();
        devices.Select(d => d.GetProperty("device").GetString()).Should().Equal("gpu", "cpu");
        devices[0].GetProperty("layers").GetInt32().Should().Be(3);
        long threeLayers = devices[0].GetProperty("total_bytes").GetInt64();
        three.GetProperty("gpu_layers_that_fit").GetInt32().Should().Be(5, "1 GiB holds the whole tiny model");

        Json(CliRunner.Run([.. common, "--device-memory", threeLayers.ToString()])).GetProperty("gpu_layers_that_fit").GetInt32().Should().Be(3);
        Json(CliRunner.Run([.. common, "--device-memory", (threeLayers - 1).ToString()])).GetProperty("gpu_layers_that_fit").GetInt32().Should().Be(2);
    }

    /// <summary>stories260K rewritten with a padding array that makes its header longer than the first range request, and
    /// a 16 MiB tensor that makes the file much longer than its header.</summary>
    static GgufWriter LongHeaderModel(out long headerBytes)
    {
        using var source = GgufFile.Open(Stories);
        var writer = new GgufWriter();
        foreach (var (key, value) in source.MetadataList)
            if (key != GgufKeys.Alignment) writer.AddMetadata(key, value);
        writer.AddMetadata("test.padding", Enumerable.Range(0, 60_000).Select(i => $"padding entry number {i:D8}").ToArray());
        foreach (var t in source.Tensors)
            writer.AddTensor(t.Name, t.Type, [.. t.Shape], source.GetTensor(t.Name).Bytes.ToArray());
        writer.AddTensor("test.filler", GgmlType.F32, [4L << 20], new byte[16 << 20]);
        headerBytes = writer.HeaderBytes().LongLength;
        return writer;
    }

    CliRunner.Result EstimateFromHub(FakeHub hub, string name, params string[] more) =>
        CliRunner.RunWithEnvironment(new Dictionary<string, string?>
        {
            ["HF_ENDPOINT"] = hub.Endpoint, ["HF_TOKEN"] = null,
            ["ENGINE_MODELS"] = Path.Combine(Path.GetTempPath(), "engine-estimate-empty-store-" + Guid.NewGuid().ToString("N")),
        }, null, ["estimate", "--model", name, "--ctx", "256", "--parallel", "1", "--bandwidth", "10", "--json", .. more]);

    string TempFile(string name)
    {
        var path = Path.Combine(Path.GetTempPath(), "engine-estimate-" + Guid.NewGuid().ToString("N"), name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        _temp.Add(path);
        return path;
    }

    [Fact]
    public void A_hub_repository_is_estimated_from_range_requests_for_its_header_only()
    {
        var writer = LongHeaderModel(out long headerBytes);
        var bytes = writer.ToArray();
        headerBytes.Should().BeGreaterThan(RemoteHeader.FirstChunk, "so a second request is needed");
        var local = TempFile("tiny-Q8_0.gguf");
        File.WriteAllBytes(local, bytes);

        using var hub = new FakeHub();
        hub.Add("acme/tiny-GGUF", new FakeHub.RepoFile("tiny-F32.gguf", new byte[100]), new FakeHub.RepoFile("tiny-Q8_0.gguf", bytes));
        var remote = Json(EstimateFromHub(hub, "acme/tiny-GGUF:Q8_0"));

        var fileRequests = hub.Requests.Where(r => r.Path.Contains("/resolve/")).ToList();
        fileRequests.Should().HaveCount(2, "a first chunk, then the rest of the header");
        fileRequests.Should().OnlyContain(r => r.Range != null && r.Range.StartsWith("bytes=") && !r.Range.EndsWith('-'));
        hub.ServedBytes.Should().BeLessThan(bytes.Length / 3, "the weights are not downloaded");
        hub.ServedBytes.Should().BeGreaterThanOrEqualTo(headerBytes);

        var fromFile = Json(CliRunner.Run("estimate", "--model", local, "--ctx", "256", "--parallel", "1", "--bandwidth", "10", "--json"));
        foreach (var part in new[] { "weights_bytes", "kv_bytes", "scratch_bytes", "overhead_bytes", "total_bytes", "weight_bytes_per_token" })
            remote.GetProperty(part).GetInt64().Should().Be(fromFile.GetProperty(part).GetInt64(), part);
    }

    /// <summary>stories260K split in two parts as llama-gguf-split writes them: the metadata and the first tensors in
    /// part 1, the other tensors in part 2.</summary>
    static (byte[] First, byte[] Second) SplitModel()
    {
        using var source = GgufFile.Open(Stories);
        var first = new GgufWriter();
        foreach (var (key, value) in source.MetadataList)
            if (key != GgufKeys.Alignment) first.AddMetadata(key, value);
        first.AddMetadata("split.no", (ushort)0).AddMetadata("split.count", (ushort)2).AddMetadata("split.tensors.count", source.Tensors.Count);
        var second = new GgufWriter().AddMetadata("split.no", (ushort)1).AddMetadata("split.count", (ushort)2);
        for (int i = 0; i < source.Tensors.Count; i++)
        {
            var t = source.Tensors[i];
            (i < source.Tensors.Count / 2 ? first : second).AddTensor(t.Name, t.Type, [.. t.Shape], source.GetTensor(t.Name).Bytes.ToArray());
        }
        return (first.ToArray(), second.ToArray());
    }

    [Fact]
    public void A_split_gguf_counts_the_tensors_of_every_part_locally_and_on_a_hub()
    {
        var (first, second) = SplitModel();
        var part1 = TempFile("tiny-Q8_0-00001-of-00002.gguf");
        var part2 = Path.Combine(Path.GetDirectoryName(part1)!, "tiny-Q8_0-00002-of-00002.gguf");
        _temp.Add(part2);
        File.WriteAllBytes(part1, first);
        File.WriteAllBytes(part2, second);
        var whole = Json(CliRunner.Run("estimate", "--model", Stories, "--ctx", "256", "--parallel", "1", "--bandwidth", "10", "--json"));
        var local = Json(CliRunner.Run("estimate", "--model", part1, "--ctx", "256", "--parallel", "1", "--bandwidth", "10", "--json"));
        local.GetProperty("weights_bytes").GetInt64().Should().Be(whole.GetProperty("weights_bytes").GetInt64());
        local.GetProperty("weight_bytes_per_token").GetInt64().Should().Be(whole.GetProperty("weight_bytes_per_token").GetInt64());

        using var hub = new FakeHub();
        hub.Add("acme/split-GGUF", new FakeHub.RepoFile("tiny-Q8_0-00001-of-00002.gguf", first), new FakeHub.RepoFile("tiny-Q8_0-00002-of-00002.gguf", second));
        var remote = Json(EstimateFromHub(hub, "acme/split-GGUF:Q8_0"));
        remote.GetProperty("weights_bytes").GetInt64().Should().Be(whole.GetProperty("weights_bytes").GetInt64());
        hub.Requests.Where(r => r.Path.Contains("/resolve/")).Select(r => r.Path.Split('/')[^1]).Distinct()
            .Should().BeEquivalentTo(["tiny-Q8_0-00001-of-00002.gguf", "tiny-Q8_0-00002-of-00002.gguf"]);
    }

    [Fact]
    public void A_truncated_or_corrupt_header_is_a_typed_error_naming_the_file()
    {
        var bytes = File.ReadAllBytes(Stories);
        using var header = GgufFile.Open(Stories);
        // The file ends inside its header: the head is all there is, so no more can be read.
        var cut = bytes[..(int)(header.DataOffset / 2)];
        var act = () => RemoteHeader.Read((offset, length) => cut.AsSpan((int)offset, (int)Math.Min(length, cut.Length - offset)).ToArray(), cut.Length, "cut.gguf");
        // Its counts claim more than the bytes left: refused before anything is sized by them.
        act.Should().Throw<ModelFormatException>().Which.Kind.Should().BeOneOf(FormatErrorKind.FileTooShort, FormatErrorKind.LengthTooLarge);

        // A header whose tensors lie past the end of the file the hub lists.
        var short_ = () => RemoteHeader.Read((offset, length) => bytes.AsSpan((int)offset, length).ToArray(), header.DataOffset + 16, "short.gguf");
        short_.Should().Throw<ModelFormatException>().Which.Kind.Should().Be(FormatErrorKind.TensorOutOfBounds);

        var corrupt = (byte[])bytes.Clone();
        corrupt[0] = (byte)'X';
        var path = TempFile("corrupt.gguf");
        File.WriteAllBytes(path, corrupt);
        var r = CliRunner.Run("estimate", "--model", path, "--bandwidth", "10");
        r.ExitCode.Should().Be(1);
        r.Stderr.Should().Contain("corrupt.gguf").And.Contain("bad magic");

        using var hub = new FakeHub();
        hub.Add("acme/cut-GGUF", new FakeHub.RepoFile("cut-Q8_0.gguf", cut));
        var remote = EstimateFromHub(hub, "acme/cut-GGUF:Q8_0");
        remote.ExitCode.Should().Be(1, remote.Stderr);
        remote.Stderr.Should().Contain("cut-Q8_0.gguf").And.Contain("remain");
    }

    [Fact]
    public void Header_parse_reads_no_more_than_the_header_needs()
    {
        var writer = LongHeaderModel(out long headerBytes);
        var bytes = writer.ToArray();
        long read = 0;
        using var file = RemoteHeader.Read((offset, length) => { read += length; return bytes.AsSpan((int)offset, length).ToArray(); }, bytes.Length, "long.gguf");
        file.HeaderOnly.Should().BeTrue();
        file.FileSize.Should().Be(bytes.Length);
        file.Tensors.Should().Contain(t => t.Name == "test.filler");
        read.Should().BeLessThanOrEqualTo(4L * RemoteHeader.FirstChunk).And.BeGreaterThanOrEqualTo(headerBytes);
    }
}
