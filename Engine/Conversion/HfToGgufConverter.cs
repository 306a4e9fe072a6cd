using System.Runtime.InteropServices;
using System.Text.Json;
using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Formats.HuggingFace;
using Engine.Formats.Safetensors;
using Engine.Models;
using Engine.Quantization;

namespace Engine.Conversion;

/// <summary>How <see cref="HfToGgufConverter"/> stores the weights.</summary>
/// <param name="Type">F32, F16 or BF16 (llama.cpp's --outtype), or a type `engine quantize` takes; norms, biases, 1-D
/// tensors and MoE routers stay F32 whatever is asked, as llama.cpp's converter keeps them. Null: F16, or Q4_0 for a
/// GPTQ / AWQ folder.</param>
internal sealed record ConvertOptions(string? Type = null)
{
    /// <summary>Worker threads for a quantized type (0: one per core); the output does not depend on it.</summary>
    public int Threads { get; init; }
    /// <summary>Told, in one line, how a GPTQ / AWQ folder's 4-bit layers were written (carried over exactly,
    /// dequantized, or re-quantized and so not lossless).</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>Where a conversion is: the tensor just written and the bytes written so far of all tensor data.</summary>
internal sealed record ConvertProgress(string Tensor, int TensorIndex, int TensorCount, long BytesDone, long BytesTotal);

/// <summary>Converts a Hugging Face safetensors folder (Llama, Qwen2, Qwen3, Qwen2-MoE, Qwen3-MoE) to a GGUF file the
/// way llama.cpp's convert_hf_to_gguf.py does: the same tensor names, llama's q/k rows permuted from rotate-half into
/// adjacent pairs, per-expert weights stacked into ffn_*_exps, the same metadata keys and tokenizer. Weights are
/// streamed from the mapped shards into the output, so memory stays at a few rows whatever the model size. The file
/// is written to a temporary name beside the output and renamed when complete.</summary>
internal static class HfToGgufConverter
{
    /// <summary>config.json "architectures" entries this converter understands, and the llama.cpp architecture of each.</summary>
    public static readonly IReadOnlyDictionary<string, string> Architectures = new Dictionary<string, string>
    {
        ["LlamaForCausalLM"] = "llama",
        ["Qwen2ForCausalLM"] = "qwen2",
        ["Qwen3ForCausalLM"] = "qwen3",
        ["Qwen2MoeForCausalLM"] = "qwen2moe",
        ["Qwen3MoeForCausalLM"] = "qwen3moe",
    };

    /// <summary>The float types written directly; quantized types go through the quantizer.</summary>
    public static readonly IReadOnlyList<string> FloatTypes = ["F32", "F16", "BF16"];

    public static Task ConvertAsync(string folder, string output, ConvertOptions options,
        IProgress<ConvertProgress>? progress = null, CancellationToken ct = default) =>
        Task.Run(() => Convert(folder, output, options, progress, ct), ct);

    public static void Convert(string folder, string output, ConvertOptions options,
        IProgress<ConvertProgress>? progress = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentException.ThrowIfNullOrEmpty(output);
        ArgumentNullException.ThrowIfNull(options);
        string dir = Path.GetFullPath(folder);
        if (!Directory.Exists(dir))
            throw new ModelFormatException(FormatErrorKind.Io, "no such folder", filePath: dir);
        // A GPTQ / AWQ folder (an unsupported quantization_config is refused here, naming the setting).
        var int4 = HfQuantizationConfig.Load(dir);
        string type = (options.Type ?? (int4 is null ? "F16" : "Q4_0")).ToUpperInvariant();
        if (!FloatTypes.Contains(type) && QuantizationMixes.Find(type) is null)
            throw new ArgumentException($"--type {options.Type} is not a type convert writes: {string.Join(", ", FloatTypes)} or one of "
                + QuantizationMixes.Names, nameof(options));
        // What became of a GPTQ / AWQ folder's 4-bit layers is told once the file is written.
        if (int4 is not null && type == "Q4_0" && IsExactQ4_0(dir, int4))
        {
            Write(dir, output, null, progress, ct);
            options.Log?.Invoke($"{Describe(int4)}: the 4-bit codes and f16 scales carried over to Q4_0 unchanged (lossless); "
                + "the other tensors keep their own type");
            return;
        }
        if (!FloatTypes.Contains(type))
        {
            // llama.cpp's own flow, convert then quantize, through an F32 file: lossless from F32, F16 and BF16 weights alike,
            // so the result is what `engine quantize` (and llama-quantize) make of the converted F32 file.
            string intermediate = output + ".f32.tmp";
            try
            {
                Write(dir, intermediate, GgmlType.F32, progress, ct);
                ModelQuantizer.Quantize(intermediate, output, new QuantizeOptions { Type = type, Threads = options.Threads }, null, ct);
            }
            finally
            {
                File.Delete(intermediate);
            }
            if (int4 is not null)
                options.Log?.Invoke($"{Describe(int4)}: re-quantized from dequantized weights to {type}: not lossless "
                    + "(only symmetric checkpoints without act-order carry over to Q4_0 exactly)");
            return;
        }
        var target = type switch { "F32" => GgmlType.F32, "BF16" => GgmlType.BF16, _ => GgmlType.F16 };
        Write(dir, output, target, progress, ct);
        if (int4 is not null)
            options.Log?.Invoke($"{Describe(int4)}: dequantized to {type}" + (target == GgmlType.F32 ? " (exact)" : " (each weight rounded to " + type + ")"));
    }

    static string Describe(HfQuantizationConfig c) => c.Method == HfQuantMethod.Gptq
        ? $"GPTQ {c.Bits}-bit g{c.GroupSize} {(c.Sym ? "sym" : "asym")}{(c.DescAct ? " act-order" : "")}"
        : $"AWQ {c.Bits}-bit g{c.GroupSize}";

    /// <summary>Whether every 4-bit layer of the folder is exactly Q4_0 (see <see cref="QuantizedLinearSource.AllExactQ4_0"/>).</summary>
    static bool IsExactQ4_0(string dir, HfQuantizationConfig config)
    {
        using var model = SafetensorsModel.Open(dir);
        using var source = new QuantizedLinearSource(model, config, _ => null, tiedOutput: false, floatActivations: false);
        return source.AllExactQ4_0;
    }

    /// <summary>Writes the GGUF: matrices in `target` (null: each in its own type, and a GPTQ / AWQ layer as its exact
    /// Q4_0 rows), the rest F32.</summary>
    static void Write(string dir, string output, GgmlType? target, IProgress<ConvertProgress>? progress, CancellationToken ct)
    {
        string configPath = Path.Combine(dir, "config.json");
        if (!File.Exists(configPath))
            throw new ModelFormatException(FormatErrorKind.Io, "the folder has no config.json, so it is not a Hugging Face model folder", filePath: configPath);
        var hf = HfConfig.Load(configPath);
        using var configJson = HfVocabulary.ReadJson(configPath);
        string hfArch = hf.Architectures.FirstOrDefault(Architectures.ContainsKey)
            ?? throw new ModelFormatException(FormatErrorKind.InvalidConfig,
                $"cannot convert architecture {(hf.Architectures.Count == 0 ? "(none given)" : string.Join(", ", hf.Architectures))}; "
                + $"supported: {string.Join(", ", Architectures.Keys)}", field: "architectures", filePath: configPath);
        string arch = Architectures[hfArch];

        using var model = SafetensorsModel.Open(dir);
        using var int4 = HfQuantizationConfig.Load(dir) is { } quantization
            ? new QuantizedLinearSource(model, quantization, _ => null, tiedOutput: false, floatActivations: false) : null;
        var plan = Plan(model, hf, arch, target, dir, int4);

        var writer = new GgufWriter();
        // general.file_type: the float type asked for, or MOSTLY_Q4_0 for a GPTQ / AWQ folder carried over.
        uint fileType = target switch { GgmlType.F32 => 0u, GgmlType.BF16 => 32u, null => 2u, _ => 1u };
        AddModelMetadata(writer, hf, arch, fileType, Path.GetFileName(dir.TrimEnd(Path.DirectorySeparatorChar)), configJson.RootElement);
        HfVocabulary.AddTo(writer, dir, hf.VocabSize, configJson.RootElement);

        long total = plan.Sum(p => p.ByteSize), done = 0;
        int index = 0;
        foreach (var tensor in plan)
        {
            var t = tensor;
            int i = index++;
            writer.AddTensor(t.Name, t.Type, t.Shape, t.ByteSize, stream =>
            {
                ct.ThrowIfCancellationRequested();
                WriteTensor(stream, t, int4, ct);
                done += t.ByteSize;
                progress?.Report(new ConvertProgress(t.Name, i + 1, plan.Count, done, total));
            });
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        writer.WriteTo(output);
    }

    /// <summary>Where a tensor's rows come from: a float tensor of the folder, or a GPTQ / AWQ layer (by its prefix).</summary>
    sealed record Source(TensorView? View, string? Int4Prefix = null);

    /// <summary>One output tensor: its sources (several for stacked experts, in expert order) and how rows move.</summary>
    sealed record PlannedTensor(string Name, GgmlType Type, long[] Shape, long ByteSize, Source[] Sources, int PermuteHeads,
        float[]? Computed = null);

    /// <summary>The parts of a GPTQ / AWQ layer besides qweight, which stands for the whole layer.</summary>
    static readonly string[] Int4Parts = [".qzeros", ".scales", ".g_idx"];

    static List<PlannedTensor> Plan(SafetensorsModel model, HfConfig hf, string arch, GgmlType? target, string dir, QuantizedLinearSource? int4)
    {
        int embd = hf.HiddenSize, headDim = hf.EffectiveHeadDim, heads = hf.NumAttentionHeads, kvHeads = hf.NumKeyValueHeads;
        int experts = hf.NumExperts ?? 0, expertFf = hf.MoeIntermediateSize ?? hf.IntermediateSize, sharedFf = hf.SharedExpertIntermediateSize ?? 0;
        bool moe = arch.EndsWith("moe", StringComparison.Ordinal);
        var plan = new List<PlannedTensor>();
        var pendingExperts = new Dictionary<string, Source?[]>();

        // llama.cpp's converter writes its computed tensors first, then walks each shard's tensors in name order.
        if (arch == "llama" && hf.RopeScaling is { RopeType: "llama3" } llama3)
        {
            var factors = Llama3RopeFactors.Compute(headDim, hf.RopeTheta, llama3.Factor ?? 8, llama3.LowFreqFactor ?? 1,
                llama3.HighFreqFactor ?? 4, llama3.OriginalMaxPositionEmbeddings ?? 8192);
            plan.Add(new PlannedTensor("rope_freqs.weight", GgmlType.F32, [factors.Length], factors.Length * 4L, [], 0, factors));
        }
        foreach (var shard in model.Shards)
            foreach (var info in shard.Tensors.OrderBy(t => t.Name, StringComparer.Ordinal))
            {
                if (info.Name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal)) continue;
                string? int4Prefix = null;
                if (int4 is not null)
                {
                    if (Int4Parts.FirstOrDefault(p => info.Name.EndsWith(p, StringComparison.Ordinal)) is { } part && int4.IsLayer(info.Name[..^part.Length]))
                        continue; // read with the layer's qweight
                    if (info.Name.EndsWith(".qweight", StringComparison.Ordinal)) int4Prefix = info.Name[..^".qweight".Length];
                }
                string hfName = int4Prefix is null ? info.Name : int4Prefix + ".weight";
                string gguf = HfTensorSource.GgufName(hfName)
                    ?? throw new ModelFormatException(FormatErrorKind.InvalidConfig,
                        $"tensor has no GGUF counterpart for a {arch} model", field: info.Name, filePath: shard.FilePath);
                var view = shard.GetView(info.Name);
                if (int4Prefix is null && view.Type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16))
                    throw new ModelFormatException(FormatErrorKind.UnknownTensorType,
                        $"tensor is {info.DType}; only F32, F16 and BF16 checkpoints (and GPTQ / AWQ 4-bit layers) can be converted",
                        field: info.Name, filePath: shard.FilePath);
                // A 4-bit layer's [in, out] in ggml order, as a float matrix of that layer would have it.
                long[] shapeOf = int4Prefix is null ? [.. view.Shape] : [int4!.Shape(int4Prefix).In, int4.Shape(int4Prefix).Out];
                var source = new Source(int4Prefix is null ? view : null, int4Prefix);
                // A 4-bit layer becomes Q4_0 when carried over (target null), else the float type asked for; a float matrix
                // keeps its own type when carried over.
                GgmlType MatrixType(GgmlType own) => target ?? (int4Prefix is null ? own : GgmlType.Q4_0);
                int block = BlockOf(gguf);
                if (block >= hf.NumHiddenLayers)
                    throw new ModelFormatException(FormatErrorKind.InvalidShape,
                        $"tensor belongs to layer {block}, but config.json has {hf.NumHiddenLayers} layers", field: info.Name, filePath: shard.FilePath);

                var parts = gguf.Split('.');
                if (parts.Length == 5 && int.TryParse(parts[3], out int expert))
                {
                    string stacked = $"blk.{parts[1]}.{parts[2]}_exps.weight";
                    long[] one = parts[2] == "ffn_down" ? [expertFf, embd] : [embd, expertFf];
                    CheckShape(shapeOf, one, info.Name, shard.FilePath);
                    if (expert >= experts)
                        throw new ModelFormatException(FormatErrorKind.InvalidShape,
                            $"expert {expert} is out of range: config.json has num_experts {experts}", field: info.Name, filePath: shard.FilePath);
                    if (!pendingExperts.TryGetValue(stacked, out var slots)) pendingExperts[stacked] = slots = new Source?[experts];
                    slots[expert] = source;
                    if (slots.All(s => s is not null))
                    {
                        pendingExperts.Remove(stacked);
                        long[] shape = [one[0], one[1], experts];
                        // Every expert must come out in the one type of the stacked tensor.
                        var types = slots.Select(s => MatrixType(s!.View?.Type ?? GgmlType.Q4_0)).Distinct().ToList();
                        if (types.Count != 1)
                            throw new ModelFormatException(FormatErrorKind.UnknownTensorType,
                                $"the experts of {stacked} are stored in different types ({string.Join(", ", types)})", field: info.Name, filePath: shard.FilePath);
                        plan.Add(new PlannedTensor(stacked, types[0], shape, GgufWriter.TensorByteSize(types[0], shape), slots!, 0));
                    }
                    continue;
                }

                long[] expected = ExpectedShape(gguf[(gguf.StartsWith("blk.") ? gguf.IndexOf('.', 4) + 1 : 0)..],
                    embd, hf.VocabSize, heads, kvHeads, headDim, hf.IntermediateSize, experts, sharedFf)
                    ?? throw new ModelFormatException(FormatErrorKind.InvalidConfig,
                        $"tensor has no GGUF counterpart for a {arch} model", field: info.Name, filePath: shard.FilePath);
                CheckShape(shapeOf, expected, info.Name, shard.FilePath);
                var type = KeepsF32(gguf, expected.Length) ? GgmlType.F32 : MatrixType(view.Type);
                // llama.cpp permutes only llama's q and k weights; Qwen checkpoints already use its NeoX rotation.
                int permute = arch == "llama" && gguf.EndsWith("attn_q.weight", StringComparison.Ordinal) ? heads
                    : arch == "llama" && gguf.EndsWith("attn_k.weight", StringComparison.Ordinal) ? kvHeads : 0;
                plan.Add(new PlannedTensor(gguf, type, expected, GgufWriter.TensorByteSize(type, expected), [source], permute));
            }

        foreach (var (stacked, slots) in pendingExperts)
        {
            int missing = Array.FindIndex(slots, s => s is null);
            throw new ModelFormatException(FormatErrorKind.MissingKey,
                $"expert {missing} of {stacked} is missing (config.json has num_experts {experts})", field: stacked, filePath: dir);
        }
        CheckComplete(plan, hf, arch, moe, dir);
        return plan;
    }

    /// <summary>The layer a GGUF tensor name belongs to (-1 for none); an index too large for an int counts as past the end.</summary>
    static int BlockOf(string gguf) => !gguf.StartsWith("blk.", StringComparison.Ordinal) ? -1
        : int.TryParse(gguf.AsSpan(4, gguf.IndexOf('.', 4) - 4), out int block) ? block : int.MaxValue;

    /// <summary>The shape (ggml order) a tensor must have, from config.json; null for a name no architecture here has.</summary>
    static long[]? ExpectedShape(string name, int embd, int vocab, int heads, int kvHeads, int headDim, int ff, int experts, int sharedFf) => name switch
    {
        "token_embd.weight" or "output.weight" => [embd, vocab],
        "output_norm.weight" or "attn_norm.weight" or "ffn_norm.weight" => [embd],
        "attn_q.weight" => [embd, heads * headDim],
        "attn_k.weight" or "attn_v.weight" => [embd, kvHeads * headDim],
        "attn_q.bias" => [heads * headDim],
        "attn_k.bias" or "attn_v.bias" => [kvHeads * headDim],
        "attn_q_norm.weight" or "attn_k_norm.weight" => [headDim],
        "attn_output.weight" => [heads * headDim, embd],
        "ffn_gate.weight" or "ffn_up.weight" => [embd, ff],
        "ffn_down.weight" => [ff, embd],
        "ffn_gate_inp.weight" => [embd, experts],
        "ffn_gate_shexp.weight" or "ffn_up_shexp.weight" => [embd, sharedFf],
        "ffn_down_shexp.weight" => [sharedFf, embd],
        "ffn_gate_inp_shexp.weight" => [embd, 1],
        _ => null,
    };

    /// <summary>llama.cpp's converter keeps 1-D tensors, norms, biases and MoE routers in F32 whatever --outtype says.</summary>
    static bool KeepsF32(string name, int dims) =>
        dims <= 1 || name.EndsWith("_norm.weight", StringComparison.Ordinal) || !name.EndsWith(".weight", StringComparison.Ordinal)
        || name.EndsWith(".ffn_gate_inp.weight", StringComparison.Ordinal) || name.EndsWith(".ffn_gate_inp_shexp.weight", StringComparison.Ordinal);

    static void CheckShape(long[] shape, long[] expected, string hfName, string? file)
    {
        if (!shape.SequenceEqual(expected))
            throw new ModelFormatException(FormatErrorKind.InvalidShape,
                "tensor shape does not match config.json", field: hfName,
                expected: "[" + string.Join(", ", expected.Reverse()) + "]",
                actual: "[" + string.Join(", ", shape.Reverse()) + "]", filePath: file);
    }

    static void CheckComplete(List<PlannedTensor> plan, HfConfig hf, string arch, bool moe, string dir)
    {
        var have = plan.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        // output.weight is optional: a checkpoint without lm_head ties the output to the embedding, as transformers does.
        var required = new List<string> { "token_embd.weight", "output_norm.weight" };
        for (int b = 0; b < hf.NumHiddenLayers; b++)
        {
            string[] layer = ["attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight", "ffn_norm.weight"];
            IEnumerable<string> names = layer;
            if (arch == "qwen2" || arch == "qwen2moe") names = names.Concat(["attn_q.bias", "attn_k.bias", "attn_v.bias"]);
            if (arch == "qwen3" || arch == "qwen3moe") names = names.Concat(["attn_q_norm.weight", "attn_k_norm.weight"]);
            bool sparse = moe && !hf.MlpOnlyLayers.Contains(b) && (b + 1) % (hf.DecoderSparseStep ?? 1) == 0;
            names = sparse
                ? names.Concat(["ffn_gate_inp.weight", "ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"])
                : names.Concat(["ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"]);
            if (sparse && arch == "qwen2moe" && (hf.SharedExpertIntermediateSize ?? 0) > 0)
                names = names.Concat(["ffn_gate_shexp.weight", "ffn_up_shexp.weight", "ffn_down_shexp.weight", "ffn_gate_inp_shexp.weight"]);
            required.AddRange(names.Select(n => $"blk.{b}.{n}"));
        }
        foreach (var name in required)
            if (!have.Contains(name))
            {
                string hfName = name.Contains("_exps.")
                    ? HfTensorSource.HfNames(name.Replace("_exps.weight", ".0.weight"), false).First()
                    : HfTensorSource.HfNames(name, false).FirstOrDefault() ?? name;
                throw new ModelFormatException(FormatErrorKind.MissingKey, $"a {arch} model needs this tensor (GGUF {name}), and no shard has it",
                    field: hfName, filePath: dir);
            }
    }

    static void AddModelMetadata(GgufWriter w, HfConfig hf, string arch, uint fileType, string name, JsonElement config)
    {
        w.AddMetadata(GgufKeys.Architecture, arch);
        w.AddMetadata(GgufKeys.Name, name);
        w.AddMetadata($"{arch}.block_count", (uint)hf.NumHiddenLayers);
        w.AddMetadata($"{arch}.context_length", (uint)hf.MaxPositionEmbeddings);
        w.AddMetadata($"{arch}.embedding_length", (uint)hf.HiddenSize);
        w.AddMetadata($"{arch}.feed_forward_length", (uint)hf.IntermediateSize);
        w.AddMetadata($"{arch}.attention.head_count", (uint)hf.NumAttentionHeads);
        w.AddMetadata($"{arch}.attention.head_count_kv", (uint)hf.NumKeyValueHeads);
        if (hf.RopeScaling is { } scaling && scaling.Factor is { } factor)
        {
            switch (scaling.RopeType)
            {
                case "linear":
                    w.AddMetadata($"{arch}.rope.scaling.type", "linear");
                    w.AddMetadata($"{arch}.rope.scaling.factor", (float)factor);
                    break;
                case "yarn":
                    w.AddMetadata($"{arch}.rope.scaling.type", "yarn");
                    w.AddMetadata($"{arch}.rope.scaling.factor", (float)factor);
                    if (scaling.OriginalMaxPositionEmbeddings is { } original)
                        w.AddMetadata($"{arch}.rope.scaling.original_context_length", (uint)original);
                    if (scaling.AttentionFactor is { } attention) w.AddMetadata($"{arch}.rope.scaling.yarn_attn_factor", (float)attention);
                    if (scaling.BetaFast is { } fast) w.AddMetadata($"{arch}.rope.scaling.yarn_beta_fast", (float)fast);
                    if (scaling.BetaSlow is { } slow) w.AddMetadata($"{arch}.rope.scaling.yarn_beta_slow", (float)slow);
                    break;
                case null or "default":
                    break;
                case "llama3" when arch == "llama":
                    break; // carried by the rope_freqs tensor, as llama.cpp's converter does
                default:
                    throw new ModelFormatException(FormatErrorKind.InvalidConfig,
                        $"rope_scaling type '{scaling.RopeType}' cannot be converted for {arch} (supported: linear, yarn, and llama3 for llama)",
                        field: "rope_scaling");
            }
        }
        w.AddMetadata($"{arch}.rope.freq_base", (float)hf.RopeTheta);
        w.AddMetadata($"{arch}.attention.layer_norm_rms_epsilon", (float)hf.RmsNormEps);
        if (hf.NumExperts is { } experts) w.AddMetadata($"{arch}.expert_count", (uint)experts);
        if (hf.NumExpertsPerTok is { } used) w.AddMetadata($"{arch}.expert_used_count", (uint)used);
        if (config.TryGetProperty("head_dim", out var headDim) && headDim.ValueKind == JsonValueKind.Number)
        {
            w.AddMetadata($"{arch}.attention.key_length", (uint)hf.EffectiveHeadDim);
            w.AddMetadata($"{arch}.attention.value_length", (uint)hf.EffectiveHeadDim);
        }
        w.AddMetadata(GgufKeys.FileType, fileType);
        if (arch == "llama")
        {
            w.AddMetadata($"{arch}.vocab_size", (uint)hf.VocabSize);
            w.AddMetadata($"{arch}.rope.dimension_count", (uint)hf.EffectiveHeadDim);
        }
        if (arch.EndsWith("moe", StringComparison.Ordinal))
        {
            if (hf.MoeIntermediateSize is { } expertFf) w.AddMetadata($"{arch}.expert_feed_forward_length", (uint)expertFf);
            if (hf.SharedExpertIntermediateSize is { } sharedFf) w.AddMetadata($"{arch}.expert_shared_feed_forward_length", (uint)sharedFf);
        }
        w.AddMetadata(GgufKeys.QuantizationVersion, 2u);
    }

    // ---------------------------------------------------------------- data

    /// <summary>Writes one tensor row by row (a row is ne0 elements of one source), converting the element type and
    /// permuting q/k rows. Same-type rows are copied as they are, so an F16 checkpoint written as F16 is bit-exact.</summary>
    static void WriteTensor(Stream stream, PlannedTensor t, QuantizedLinearSource? int4, CancellationToken ct)
    {
        if (t.Computed is { } computed) { stream.Write(MemoryMarshal.AsBytes(computed.AsSpan())); return; }
        int rowLength = (int)t.Shape[0];
        int outBytes = (int)GgufWriter.TensorByteSize(t.Type, [rowLength]);
        var floats = new float[rowLength];
        var outRow = new byte[outBytes];
        foreach (var (view, prefix) in t.Sources)
        {
            if (prefix is not null)
            {
                ct.ThrowIfCancellationRequested();
                WriteInt4Layer(stream, t, int4!, prefix, outRow);
                continue;
            }
            var source = view!;
            long rows = source.RowCount;
            int inBytes = (int)(source.ByteSize / Math.Max(rows, 1));
            for (long r = 0; r < rows; r++)
            {
                if ((r & 1023) == 0) ct.ThrowIfCancellationRequested();
                long from = t.PermuteHeads > 0 ? PermutedSource(r, rows, t.PermuteHeads) : r;
                ReadOnlySpan<byte> row = RowBytes(source, from, inBytes);
                if (source.Type == t.Type) { stream.Write(row); continue; }
                RowFormats.For(source.Type).DequantizeRow(row, floats);
                RowEncoder.Encode(t.Type, floats, outRow);
                stream.Write(outRow);
            }
        }
    }

    /// <summary>A GPTQ / AWQ layer: its exact Q4_0 rows, or its dequantized weights row by row in the tensor's float
    /// type; q/k rows permuted as for a float checkpoint.</summary>
    static void WriteInt4Layer(Stream stream, PlannedTensor t, QuantizedLinearSource int4, string prefix, byte[] outRow)
    {
        var (inputs, outputs) = int4.Shape(prefix);
        int[]? rowOrder = t.PermuteHeads > 0 ? Enumerable.Range(0, outputs).Select(r => (int)PermutedSource(r, outputs, t.PermuteHeads)).ToArray() : null;
        if (t.Type == GgmlType.Q4_0)
        {
            stream.Write(int4.ExactQ4_0Rows(prefix, rowOrder));
            return;
        }
        var w = int4.Dequantize(prefix);
        for (int r = 0; r < outputs; r++)
        {
            var row = w.AsSpan((rowOrder is null ? r : rowOrder[r]) * inputs, inputs);
            if (t.Type == GgmlType.F32) { stream.Write(MemoryMarshal.AsBytes(row)); continue; }
            RowEncoder.Encode(t.Type, row, outRow);
            stream.Write(outRow);
        }
    }

    static unsafe ReadOnlySpan<byte> RowBytes(TensorView view, long row, int rowBytes) =>
        new(view.Pointer + row * rowBytes, rowBytes);

    /// <summary>llama.cpp's permute for llama q/k: within each head, output row 2i + j comes from input row j * d/2 + i
    /// (rotate-half order to adjacent pairs).</summary>
    static long PermutedSource(long row, long rows, int heads)
    {
        long headDim = rows / heads;
        long head = row / headDim, within = row % headDim;
        long i = within / 2, j = within % 2;
        return head * headDim + j * (headDim / 2) + i;
    }
}
