using Engine.Backends;
using Engine.Backends.Cpu;
using Engine.Batching;
using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Models;
using Engine.Quantization;

namespace Engine.Planning;

/// <summary>What a model would be loaded with, for <see cref="MemoryEstimate"/>: the load options that change memory.</summary>
internal sealed record EstimateOptions
{
    /// <summary>As <see cref="ModelLoadOptions.ContextLength"/>: 0 for the trained context capped at 4096.</summary>
    public int ContextLength { get; init; }
    public int ParallelSequences { get; init; } = 4;
    public KvElementType KvType { get; init; } = KvElementType.F16;
    /// <summary>As <see cref="ModelLoadOptions.KvCacheBytes"/>: 0 sizes the pool for the parallel sequences.</summary>
    public long KvCacheBytes { get; init; }
    /// <summary>Layers on the GPU (the first ones, with the embedding); 0 runs everything on the CPU.</summary>
    public int GpuLayers { get; init; }
    /// <summary>CPU worker threads; 0 for one per core.</summary>
    public int Threads { get; init; }
    /// <summary>Rows of one forward step (the loader's default, ModelOptions.MaxBatch).</summary>
    public int MaxBatch { get; init; } = 64;
    /// <summary>As <see cref="ModelLoadOptions.RepackWeights"/>: the CPU holds Q4_K, Q6_K and Q4_0 matrices (F16 and BF16 with AVX-512) as repacked copies.</summary>
    public bool RepackWeights { get; init; } = true;
    /// <summary>Memory the process may use, for the cap on the default KV pool; 0 for this machine's.</summary>
    public long HostMemoryBytes { get; init; }
}

/// <summary>Memory of one device: the weights of its layers, its share of the KV pool, its activations and kernel
/// scratch.</summary>
internal sealed record DeviceMemory(string Device, int FirstLayer, int LayerCount, long WeightBytes, long KvBytes, long ScratchBytes)
{
    public long TotalBytes => WeightBytes + KvBytes + ScratchBytes;
}

/// <summary>
/// The memory a model takes once loaded and full, from its header alone, counted with the loader's own rules:
/// the weights (memory-mapped, resident once touched; repacked copies replace their mapped pages), the paged KV pool
/// (<see cref="Model.KvBlockCount"/>, every block written), the activations (<see cref="StageActivations.Floats"/>),
/// the scheduler's logits, the kernels' scratch (quantized activations, attention tiles), the block manager's
/// tables, and the runtime with the tokenizer (measured constants, see docs/models.md).
/// </summary>
internal sealed record MemoryEstimate
{
    public required ModelConfig Config { get; init; }
    public required int Context { get; init; }
    public required int KvBlocks { get; init; }
    public required string KvSizing { get; init; }
    public required KvElementType KvType { get; init; }
    public required IReadOnlyList<DeviceMemory> Devices { get; init; }
    /// <summary>The .NET runtime, the engine's code, and the tokenizer's tables (host memory).</summary>
    public required long OverheadBytes { get; init; }
    /// <summary>Bytes of weights one generated token reads (all layers; MoE: only the experts used).</summary>
    public required long WeightBytesPerToken { get; init; }
    /// <summary>Multiply-adds one token's matmuls take, twice for flops (MoE: only the experts used).</summary>
    public required long MatMulFlopsPerToken { get; init; }

    public long WeightsBytes => Devices.Sum(d => d.WeightBytes);
    public long KvBytes => Devices.Sum(d => d.KvBytes);
    public long ScratchBytes => Devices.Sum(d => d.ScratchBytes);
    public long TotalBytes => WeightsBytes + KvBytes + ScratchBytes + OverheadBytes;
    public long KvBytesPerToken => KvBytes / Math.Max(1L, (long)KvBlocks * Llama.DefaultBlockTokens);

    /// <summary>Process memory of the .NET runtime and the engine's code (mapped assemblies, JIT, heaps), measured: the
    /// peak resident set of stories260K, whose weights and buffers are 2 MiB, is 53 MiB; see docs/models.md.</summary>
    internal const long RuntimeBytes = 50L << 20;

    /// <summary>Bytes per vocabulary entry of the header's copy of the tokenizer metadata (token texts, scores, types,
    /// merges) and the tokenizer built from it, measured: Qwen2.5's 151,936 entries add about 9 MiB.</summary>
    internal const long TokenizerBytesPerToken = 64;

    /// <summary>The estimate for a model whose header is `file` (header only is enough), with the tensors of all its
    /// parts (a split GGUF's other parts' tensors in `moreTensors`).</summary>
    public static MemoryEstimate For(GgufFile file, EstimateOptions options, IEnumerable<GgufTensorInfo>? moreTensors = null)
    {
        var others = (moreTensors ?? []).ToList();
        // The config looks for output.weight and rope_freqs.weight, which a split model may hold in any part.
        var config = GgufModelConfig.Read(file, others);
        ModelConfigValidation.Validate(config);
        var tensors = file.Tensors.Concat(others).ToList();
        int vocabularyEntries = file.Metadata.TryGetValue(GgufKeys.Tokens, out var tokens) && tokens.Value is Array a ? a.Length : config.VocabSize;
        return For(config, tensors, vocabularyEntries, options);
    }

    public static MemoryEstimate For(ModelConfig config, IReadOnlyList<GgufTensorInfo> tensors, int vocabularyEntries, EstimateOptions options)
    {
        int gpuLayers = Math.Clamp(options.GpuLayers, 0, config.LayerCount);
        int threads = options.Threads > 0 ? options.Threads : Environment.ProcessorCount;
        int context = Model.ContextFor(options.ContextLength, config);
        var stages = gpuLayers == 0 ? [("cpu", 0, config.LayerCount)]
            : gpuLayers == config.LayerCount ? [("gpu", 0, config.LayerCount)]
            : new[] { ("gpu", 0, gpuLayers), ("cpu", gpuLayers, config.LayerCount - gpuLayers) };

        var weights = new long[stages.Length];
        bool repack = options.RepackWeights && Simd.Avx2Fma;
        bool tied = !tensors.Any(t => t.Name == "output.weight");
        foreach (var t in tensors)
        {
            int stage = StageOf(t.Name, stages);
            weights[stage] += ResidentBytes(t, repack && stages[stage].Item1 == "cpu", tied);
        }
        long hostWeights = stages.Select((s, i) => s.Item1 == "cpu" ? weights[i] : 0).Sum();
        long overhead = RuntimeBytes + TokenizerBytesPerToken * vocabularyEntries;

        long host = options.HostMemoryBytes > 0 ? options.HostMemoryBytes : GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        int blocks = Model.KvBlockCount(config, options.KvCacheBytes, options.ParallelSequences, context, options.KvType,
            host - hostWeights - overhead, out string sizing);

        var devices = new List<DeviceMemory>();
        for (int i = 0; i < stages.Length; i++)
        {
            var (device, first, count) = stages[i];
            bool last = i == stages.Length - 1;
            var shape = new KvPoolShape(count, blocks, Llama.DefaultBlockTokens, config.KeyWidth, config.ValueWidth, options.KvType);
            long kv = shape.BlockBytes * blocks;
            long scratch = StageActivations.Floats(config, options.MaxBatch, computesLogits: last) * sizeof(float);
            if (device == "cpu") scratch += CpuKernelScratchBytes(config, tensors, options.MaxBatch, threads);
            if (last) scratch += SchedulerBytes(config, options.MaxBatch, blocks); // host memory, counted with the last stage
            devices.Add(new DeviceMemory(device, first, count, weights[i], kv, scratch));
        }
        return new MemoryEstimate
        {
            Config = config, Context = context, KvBlocks = blocks, KvSizing = sizing, KvType = options.KvType, Devices = devices,
            OverheadBytes = overhead, WeightBytesPerToken = BytesPerToken(config, tensors), MatMulFlopsPerToken = FlopsPerToken(config, tensors),
        };
    }

    /// <summary>Which stage holds a tensor: a layer's by its number, the embedding with the first stage, the output
    /// head and final norm with the last (as <see cref="LlamaWeights.Part"/> splits them).</summary>
    static int StageOf(string name, (string, int First, int Count)[] stages)
    {
        if (LayerOf(name) is int layer)
        {
            for (int i = 0; i < stages.Length; i++)
                if (layer >= stages[i].First && layer < stages[i].First + stages[i].Count) return i;
            return stages.Length - 1;
        }
        return name.StartsWith("output", StringComparison.Ordinal) ? stages.Length - 1 : 0;
    }

    static int? LayerOf(string name)
    {
        if (!name.StartsWith("blk.", StringComparison.Ordinal)) return null;
        int dot = name.IndexOf('.', 4);
        return dot > 4 && int.TryParse(name.AsSpan(4, dot - 4), out int layer) ? layer : null;
    }

    /// <summary>A tensor's resident bytes: its mapped bytes, or the repacked copy the CPU makes of it (read through the
    /// file, so the map's pages stay out). A vector is also copied to float32 at load. A tied embedding that is repacked
    /// for the output head is resident twice: its lookups read the map, and the kernel maps 64 KiB around each row read
    /// (fault-around), so a few thousand prompt tokens bring in the whole table.</summary>
    static long ResidentBytes(GgufTensorInfo t, bool repack, bool tiedOutput)
    {
        if (t.Shape.Count == 1) return t.ByteSize + t.ElementCount * sizeof(float);
        if (!repack || t.Shape.Count != 2 || Engine.Quantization.Repacked.RepackedFormats.For(t.Type, (int)t.Shape[1], (int)t.Shape[0]) is not { } format)
            return t.ByteSize;
        long packed = format.PackedBytes((int)t.Shape[1], (int)t.Shape[0]);
        return t.Name == "token_embd.weight" ? (tiedOutput ? packed + t.ByteSize : t.ByteSize) : packed;
    }

    /// <summary>The CPU kernels' scratch once a full batch ran: the quantized activations of the widest matrix input
    /// (<see cref="MatMulKernels"/>), and each worker's attention scratch (<see cref="PagedAttention"/>).</summary>
    internal static long CpuKernelScratchBytes(ModelConfig config, IReadOnlyList<GgufTensorInfo> tensors, int maxBatch, int threads)
    {
        long activations = 0;
        foreach (var t in tensors)
            if (t.Shape.Count >= 2 && t.Type != GgmlType.F32 && RowFormats.IsSupported(t.Type) && t.Name != "token_embd.weight")
                activations = Math.Max(activations, (long)RowFormats.For(t.Type).ActivationBytes((int)t.Shape[0]) * maxBatch);
        // A tied output head multiplies by the embedding table.
        if (!tensors.Any(t => t.Name == "output.weight") && tensors.FirstOrDefault(t => t.Name == "token_embd.weight") is { } embd
            && embd.Type != GgmlType.F32 && RowFormats.IsSupported(embd.Type))
            activations = Math.Max(activations, (long)RowFormats.For(embd.Type).ActivationBytes((int)embd.Shape[0]) * maxBatch);
        long attention = (long)threads * PagedAttention.ScratchFloats(Llama.DefaultBlockTokens, config.HeadDim, config.ValueHeadDim, config.GroupSize) * sizeof(float);
        return activations + attention;
    }

    /// <summary>The scheduler's logits of a full step and its sampling row, and the block manager's and pool's
    /// per-block tables (a full block keeps its token ids for the prefix cache).</summary>
    internal static long SchedulerBytes(ModelConfig config, int maxBatch, int blocks)
    {
        long logits = ((long)maxBatch * config.VocabSize + config.VocabSize) * sizeof(float);
        long perBlock = KvBlockManager.BytesPerBlock(Llama.DefaultBlockTokens) + IntPtr.Size; // the CPU pool's block array
        return logits + perBlock * blocks;
    }

    /// <summary>Bytes of weights one generated token reads, by the rules of <see cref="Benchmarking.WeightTraffic"/>,
    /// from the header: every layer matrix once (of expert stacks, only the share of the experts used), the output
    /// head, and one embedding row unless the head is the embedding.</summary>
    internal static long BytesPerToken(ModelConfig config, IReadOnlyList<GgufTensorInfo> tensors)
    {
        long bytes = 0;
        bool tied = !tensors.Any(t => t.Name == "output.weight");
        foreach (var t in tensors)
        {
            if (t.Shape.Count < 2) continue;
            if (t.Name == "token_embd.weight") bytes += tied ? t.ByteSize : t.ByteSize / Math.Max(1, t.Shape[^1]);
            else if (IsExpertStack(t)) bytes += t.ByteSize / Math.Max(1, config.ExpertCount) * config.ExpertsPerToken;
            else bytes += t.ByteSize;
        }
        return bytes;
    }

    /// <summary>Flops of one token's matmuls: 2 per weight element used (the embedding lookup is no matmul).</summary>
    internal static long FlopsPerToken(ModelConfig config, IReadOnlyList<GgufTensorInfo> tensors)
    {
        long flops = 0;
        bool tied = !tensors.Any(t => t.Name == "output.weight");
        foreach (var t in tensors)
        {
            if (t.Shape.Count < 2 || (t.Name == "token_embd.weight" && !tied)) continue;
            flops += 2 * (IsExpertStack(t) ? t.ElementCount / Math.Max(1, config.ExpertCount) * config.ExpertsPerToken : t.ElementCount);
        }
        return flops;
    }

    static bool IsExpertStack(GgufTensorInfo t) => t.Shape.Count == 3 && t.Name.Contains("_exps", StringComparison.Ordinal);
}
