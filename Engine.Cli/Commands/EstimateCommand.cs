using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Backends;
using Engine.Benchmarking;
using Engine.Cli.Store;
using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Gpu;
using Engine.Planning;

namespace Engine.Cli.Commands;

/// <summary>`engine estimate`: the memory a model takes by part and its expected speed, from its GGUF header alone (a
/// hub repository's header is read by range requests, before any download).</summary>
internal static class EstimateCommand
{
    const string Help = """
        usage: engine estimate --model FILE|NAME|[modelscope:]OWNER/REPO[:QUANT] [--ctx N] [--parallel N] [--kv-type T]
                               [--kv-budget S] [--device D] [--gpu-layers N] [--device-memory S] [--threads N]
                               [--bandwidth GB/s] [--depth D] [--revision R] [--json]
          memory by part (weights per device, KV cache, activations and scratch, runtime and tokenizer) and the expected
          prompt (pp512) and generation (tg) speed, without loading the model: only its GGUF header is read. A name that is
          neither a file nor a pulled model is looked up on Hugging Face (HF_ENDPOINT, HF_TOKEN, --revision; modelscope:
          for ModelScope) and only the header's bytes are fetched, with range requests.
          --ctx, --parallel, --kv-type, --kv-budget, --threads, --no-repack: as run and serve take them (the KV cache
                             counted full)
          --device D         cuda, opencl or auto: also says which --gpu-layers fits the device's memory
          --device-memory S  the device's memory (e.g. 24GiB) instead of asking the driver
          --gpu-layers N     the first N layers on the device (default: as many as fit, with --device)
          --bandwidth GB/s   memory bandwidth for the speed estimate (default: measured now, under a second)
          --depth D          generation speed with D tokens already in the cache (default 0; also shown at --ctx)
          --json             the parts in bytes: weights_bytes, kv_bytes, scratch_bytes, overhead_bytes, total_bytes,
                             devices[] (weights, KV and scratch per device), and the speed estimates
        """;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, ModelArguments.Flags);
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        var model = cl.String("model", "m") ?? throw new UsageException("--model is required");
        var device = ModelArguments.Device(cl);
        int? gpuLayers = ModelArguments.GpuLayers(cl);
        long? deviceMemory = cl.Size("device-memory");
        var sizing = ModelArguments.SizingOptions(cl);
        var options = new EstimateOptions
        {
            ContextLength = sizing.ContextLength,
            ParallelSequences = sizing.ParallelSequences,
            KvType = sizing.KvCacheType.ToElementType(),
            KvCacheBytes = sizing.KvCacheBytes,
            Threads = sizing.Threads,
            RepackWeights = sizing.RepackWeights,
        };
        double bandwidthGb = cl.Double("bandwidth", 0, 0, 1e6);
        int depth = cl.Int("depth", 0, 0, 1 << 24);
        var revision = cl.String("revision");
        bool json = cl.Has("json");
        cl.RejectUnknown();
        bool gpu = device is not (DeviceChoice.Cpu);
        if (!gpu && gpuLayers > 0) throw new UsageException("--gpu-layers needs --device cuda, opencl or auto");

        var (header, parts, source) = Open(model, revision);
        using var _ = header;
        int threads = options.Threads > 0 ? options.Threads : Environment.ProcessorCount;

        (string Name, long Bytes)? deviceInfo = null;
        if (gpu)
        {
            deviceInfo = deviceMemory is long given ? ("--device-memory", given) : DeviceProbe.Memory(device);
            if (deviceInfo is null && gpuLayers is null)
                throw new UsageException($"no {device.ToString().ToLowerInvariant()} device found: give its memory with --device-memory SIZE or --gpu-layers N");
        }
        var plain = MemoryEstimate.For(header, options, parts);
        int layers = plain.Config.LayerCount;
        int? fitting = deviceInfo is { } d ? LayersThatFit(header, options, parts, layers, d.Bytes) : null;
        int onDevice = !gpu ? 0 : gpuLayers ?? fitting ?? layers;
        var estimate = onDevice == 0 ? plain : MemoryEstimate.For(header, options with { GpuLayers = onDevice }, parts);

        double bandwidth = bandwidthGb > 0 ? bandwidthGb * 1e9 : MemoryBandwidth.MeasureBytesPerSecond(threads, 256L << 20, 3);
        double flops = SpeedEstimate.MeasureFlopsPerSecond(threads);
        var dominant = parts.Concat(header.Tensors).Where(t => t.Shape.Count >= 2).GroupBy(t => t.Type)
            .OrderByDescending(g => g.Sum(t => t.ByteSize)).First().Key;
        double pp = SpeedEstimate.Prompt(estimate, flops, 512, dominant);
        double tg = SpeedEstimate.Generation(estimate, bandwidth, flops, depth, dominant);
        double tgFull = SpeedEstimate.Generation(estimate, bandwidth, flops, estimate.Context, dominant);

        if (json)
        {
            var root = new JsonObject
            {
                ["model"] = source,
                ["architecture"] = estimate.Config.Architecture,
                ["layers"] = layers,
                ["context"] = estimate.Context,
                ["parallel"] = options.ParallelSequences,
                ["kv_type"] = options.KvType.ToString().ToLowerInvariant(),
                ["kv_blocks"] = estimate.KvBlocks,
                ["kv_tokens"] = (long)estimate.KvBlocks * Engine.Models.Llama.DefaultBlockTokens,
                ["weights_bytes"] = estimate.WeightsBytes,
                ["kv_bytes"] = estimate.KvBytes,
                ["scratch_bytes"] = estimate.ScratchBytes,
                ["overhead_bytes"] = estimate.OverheadBytes,
                ["total_bytes"] = estimate.TotalBytes,
                ["devices"] = new JsonArray([.. estimate.Devices.Select(dev => (JsonNode)new JsonObject
                {
                    ["device"] = dev.Device, ["first_layer"] = dev.FirstLayer, ["layers"] = dev.LayerCount,
                    ["weights_bytes"] = dev.WeightBytes, ["kv_bytes"] = dev.KvBytes, ["scratch_bytes"] = dev.ScratchBytes,
                    ["total_bytes"] = dev.TotalBytes,
                })]),
                ["gpu_layers"] = onDevice,
                ["weight_bytes_per_token"] = estimate.WeightBytesPerToken,
                ["memory_bandwidth_bytes_per_second"] = Math.Round(bandwidth),
                ["flops_per_second"] = Math.Round(flops),
                ["pp512_tokens_per_second"] = Math.Round(pp, 2),
                ["tg_tokens_per_second"] = Math.Round(tg, 2),
                ["tg_depth"] = depth,
                ["tg_full_context_tokens_per_second"] = Math.Round(tgFull, 2),
            };
            if (deviceInfo is { } di)
            {
                root["device_memory_bytes"] = di.Bytes;
                root["gpu_layers_that_fit"] = fitting;
            }
            Console.WriteLine(root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }

        var o = Console.Out;
        var c = estimate.Config;
        o.WriteLine($"{source}: {c.Architecture}, {layers} layers, vocabulary {c.VocabSize}, trained context {c.TrainedContextLength}");
        o.WriteLine(Invariant($"context {estimate.Context}, KV cache {options.KvType.ToString().ToLowerInvariant()}: {estimate.KvBlocks} blocks of {Engine.Models.Llama.DefaultBlockTokens} tokens ({estimate.KvSizing})"));
        foreach (var dev in estimate.Devices)
            o.WriteLine($"  {dev.Device,-4} layers {dev.FirstLayer}-{dev.FirstLayer + dev.LayerCount - 1}: weights {Size(dev.WeightBytes)}, KV cache {Size(dev.KvBytes)}, activations and scratch {Size(dev.ScratchBytes)}");
        o.WriteLine($"  runtime and tokenizer: {Size(estimate.OverheadBytes)}");
        o.WriteLine($"  total: {Size(estimate.TotalBytes)}" + (estimate.Devices.Count > 1 || estimate.Devices[0].Device != "cpu"
            ? $" (device {Size(estimate.Devices.Where(x => x.Device != "cpu").Sum(x => x.TotalBytes))}, host {Size(estimate.TotalBytes - estimate.Devices.Where(x => x.Device != "cpu").Sum(x => x.TotalBytes))})" : ""));
        if (deviceInfo is { } info)
            o.WriteLine(fitting == layers ? $"fits {info.Name} ({Size(info.Bytes)}) whole: every layer on the device"
                : fitting > 0 ? $"{info.Name} ({Size(info.Bytes)}): --gpu-layers {fitting} fits (the rest on the CPU)"
                : $"{info.Name} ({Size(info.Bytes)}): not even one layer fits; use --device cpu");
        o.WriteLine(Invariant($"speed on {threads} threads (bandwidth {bandwidth / 1e9:F1} GB/s{(bandwidthGb > 0 ? ", given" : ", measured")}, {flops / 1e9:F0} GFLOP/s): pp512 ~{pp:F0} tok/s, tg ~{tg:F1} tok/s at depth {depth}, ~{tgFull:F1} tok/s at depth {estimate.Context}"));
        return 0;
    }

    /// <summary>The most leading layers whose weights, KV share and scratch fit `memory` bytes of device memory.</summary>
    static int LayersThatFit(GgufFile header, EstimateOptions options, IReadOnlyList<GgufTensorInfo> parts, int layers, long memory)
    {
        for (int n = layers; n > 0; n--)
        {
            var e = MemoryEstimate.For(header, options with { GpuLayers = n }, parts);
            if (e.Devices[0].TotalBytes <= memory) return n;
        }
        return 0;
    }

    /// <summary>The header of a local file (all parts of a split one), a pulled model, or a hub repository's GGUF.</summary>
    static (GgufFile Header, IReadOnlyList<GgufTensorInfo> MoreTensors, string Source) Open(string model, string? revision)
    {
        if (Directory.Exists(model)) throw new UsageException($"{model} is a folder: estimate reads GGUF files (convert safetensors first)");
        string? path = File.Exists(model) ? model : null;
        if (path is null && ModelName.TryParse(model, out var name, out _))
        {
            var stored = ModelStore.Default().ModelPath(name!);
            if (stored is not null && Directory.Exists(stored))
                throw new UsageException($"{model} is a safetensors model in the store: estimate reads GGUF files (convert it first)");
            if (stored is not null && File.Exists(stored)) path = stored;
            else return OpenRemote(name!, revision);
        }
        if (path is null) throw new UsageException($"no such model file: {model}");
        return OpenLocal(path);
    }

    /// <summary>A local model: its first part's header and the other parts' tensors, found and checked as the loader
    /// does (<see cref="Engine.Models.GgufModelFiles"/>), so estimate accepts exactly the files run accepts.</summary>
    static (GgufFile, IReadOnlyList<GgufTensorInfo>, string) OpenLocal(string path)
    {
        var files = Engine.Models.GgufModelFiles.Open(path);
        var more = files.MoreTensors.ToList();
        // The tensor infos are copies: only the first part, whose header the estimate reads, stays open.
        foreach (var part in files.Parts.Skip(1)) part.Dispose();
        return (files.First, more, path);
    }

    /// <summary>The header of a repository's GGUF (every part of a split one), read by range requests.</summary>
    internal static (GgufFile, IReadOnlyList<GgufTensorInfo>, string) OpenRemote(ModelName name, string? revision)
    {
        var hub = HubClient.FromEnvironment(Console.Error, name.ModelScope);
        revision ??= hub.DefaultRevision;
        HubClient.CheckRevision(revision);
        try
        {
            var files = PullCommand.Select(hub.ListFiles(name.Repository, revision), name);
            if (!files[0].Path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
                throw new StoreException($"{name.Repository} has no GGUF files: estimate reads a GGUF header (pull and convert the safetensors model first)");
            GgufFile? first = null;
            var more = new List<GgufTensorInfo>();
            try
            {
                foreach (var file in files)
                {
                    var header = RemoteHeader.Read((offset, length) => hub.ReadRange(name.Repository, revision, file, offset, length),
                        file.Size, $"{name.Repository}/{file.Path}");
                    if (first is null) first = header;
                    else { more.AddRange(header.Tensors); header.Dispose(); }
                }
            }
            catch { first?.Dispose(); throw; }
            return (first!, more, $"{name.Repository}/{files[0].Path}");
        }
        catch (HttpRequestException e) { throw new StoreException($"cannot reach {hub.Endpoint}: {e.Message}"); }
        catch (JsonException e) { throw new StoreException($"{hub.Endpoint} answered the file listing of {name.Repository} with malformed JSON: {e.Message}"); }
    }

    static string Size(long bytes) => bytes >= 1L << 30 ? Invariant($"{bytes / (double)(1L << 30):F2} GiB") : Invariant($"{bytes / (double)(1 << 20):F1} MiB");

    static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
