using Engine.Backends;
using Engine.Backends.Cpu;
using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Formats.HuggingFace;
using Engine.Formats.Safetensors;

namespace Engine.Models;

/// <summary>Options for opening a model.</summary>
internal sealed record ModelOptions
{
    public int Threads { get; init; }
    public int MaxBatch { get; init; } = 64;
    /// <summary>Creates the backend the model runs on, once its config and weights are known; null means the CPU
    /// backend with <see cref="Threads"/>. The hook keeps this assembly free of any GPU library: front ends wire
    /// it to Engine.Gpu (see engine's --device).</summary>
    public Func<ModelConfig, LlamaWeights, IBackend>? BackendFactory { get; init; }
    /// <summary>Splits the layers over several backends (a GPU's first layers, the CPU's rest: --gpu-layers);
    /// when set it replaces <see cref="BackendFactory"/>. The stages must cover every layer in order.</summary>
    public Func<ModelConfig, LlamaWeights, IReadOnlyList<LayerStage>>? StageFactory { get; init; }
    /// <summary>Let the CPU backend repack Q4_K matrices into 8-row groups at load (faster matmuls; llama.cpp's
    /// default too). Off (engine's --no-repack) every matrix is read in place from the map.</summary>
    public bool RepackWeights { get; init; } = true;
    /// <summary>GPTQ / AWQ checkpoints: compute their matmuls with float32 activations (exact) instead of activations
    /// quantized to Q8_0 blocks as the GGUF kernels do (the default: faster, within the 8-bit tolerance).</summary>
    public bool QuantizedCheckpointFloatActivations { get; init; }
    /// <summary>GPTQ / AWQ checkpoints in the 8-bit mode: multiply with their float output head rounded to Q6_K (or Q8_0) rows
    /// (the default, see <see cref="QuantizedLinearSource.OutputHead"/>). Off keeps the stored head, so a folder and
    /// the GGUF converted from it run the same matrices (the tests that prove the conversion lossless).</summary>
    public bool RoundCheckpointOutputHead { get; init; } = true;
    /// <summary>Told what long loading steps are doing (a GPU upload, repacking a large model), one line each.</summary>
    public Action<string>? Progress { get; init; }
}

/// <summary>A model file opened, validated and bound to a backend; owns the memory map.</summary>
internal sealed class LoadedModel : IDisposable
{
    public string Path { get; }
    public ModelConfig Config { get; }
    public Llama Model { get; }
    /// <summary>GGUF metadata when the model came from a GGUF file (tokenizer, chat template).</summary>
    public IReadOnlyDictionary<string, GgufValue>? GgufMetadata { get; }
    /// <summary>A GPTQ / AWQ folder's format and activation mode, e.g. "GPTQ v1 4-bit, group size 128, symmetric;
    /// activations q8 (fast)"; null for any other model.</summary>
    public string? QuantizedCheckpoint { get; private init; }
    readonly IDisposable _file;
    /// <summary>Bytes the model takes on disk: every part of a split GGUF, or a folder's safetensors files.</summary>
    public long FileBytes { get; private init; }

    LoadedModel(string path, ModelConfig config, Llama model, IReadOnlyDictionary<string, GgufValue>? metadata, IDisposable file)
    {
        Path = path; Config = config; Model = model; GgufMetadata = metadata; _file = file;
        _hfChatTemplate = new Lazy<string?>(ReadHfChatTemplate);
    }

    public static LoadedModel Open(string path, ModelOptions? options = null)
    {
        options ??= new ModelOptions();
        if (Directory.Exists(path) || path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            return OpenHuggingFace(path, options);
        var files = GgufModelFiles.Open(path);
        try
        {
            var config = GgufModelConfig.Read(files);
            var weights = LlamaWeights.Load(config, new GgufTensorSource(files));
            return new LoadedModel(path, config, Bind(config, weights, options), files.Metadata, files) { FileBytes = files.TotalSize };
        }
        catch (ModelFormatException e) { files.Dispose(); throw e.WithFile(path); }
        catch { files.Dispose(); throw; }
    }

    /// <summary>The model on the backend(s) the options ask for. A backend that holds its own copy of the weights
    /// receives its stage's share after the activations are allocated, so its memory check sees everything but
    /// the KV cache.</summary>
    static Llama Bind(ModelConfig config, LlamaWeights weights, ModelOptions options)
    {
        IReadOnlyList<LayerStage> stages = options.StageFactory?.Invoke(config, weights)
            ?? [new LayerStage(options.BackendFactory?.Invoke(config, weights) ?? new CpuBackend(options.Threads, options.RepackWeights), 0, config.LayerCount)];
        Llama? model = null;
        try
        {
            model = new Llama(config, weights, stages, options.MaxBatch);
            for (int s = 0; s < stages.Count; s++)
                if (stages[s].Backend is IResidentWeights resident and not CpuBackend { RepacksWeights: false })
                    Upload(resident, stages[s].Backend.Name, weights.Part(stages[s].FirstLayer, stages[s].LayerCount, embedding: s == 0, output: s == stages.Count - 1), options.Progress);
            return model;
        }
        catch
        {
            if (model is not null) model.Dispose();
            else foreach (var stage in stages) stage.Backend.Dispose();
            throw;
        }
    }

    /// <summary>Hands a backend its weights, saying so when there are enough of them to take a noticeable time
    /// (about a second per GiB on a GPU's bus or for repacking on the CPU).</summary>
    static void Upload(IResidentWeights backend, string name, WeightSet weights, Action<string>? progress)
    {
        long bytes = weights.Matrices.Sum(m => m.View.ByteSize);
        bool report = progress is not null && bytes >= 512L << 20;
        if (report) progress!($"preparing {bytes / (double)(1 << 30):F1} GiB of weights for {name}...");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        backend.Upload(weights);
        if (report) progress!($"weights ready in {clock.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>A Hugging Face folder (config.json + safetensors) or a .safetensors file with config.json beside it.</summary>
    static LoadedModel OpenHuggingFace(string path, ModelOptions options)
    {
        string folder = Directory.Exists(path) ? path : System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        var hf = HfConfig.Load(folder);
        var model = SafetensorsModel.Open(path);
        QuantizedLinearSource? quantized = null;
        try
        {
            var config = HfModelConfig.Read(hf, model.Contains("lm_head.weight") || model.Contains("lm_head.qweight"));
            if (HfQuantizationConfig.Load(folder) is { } quantization)
                quantized = new QuantizedLinearSource(model, quantization, prefix => QuantizedLinearShapes.Expected(config, prefix),
                    config.TiedOutput, options.QuantizedCheckpointFloatActivations) { RoundOutputHead = options.RoundCheckpointOutputHead };
            var weights = LlamaWeights.Load(config, new HfTensorSource(model, config.TiedOutput), quantized);
            if (config.RopeScaling.Type == RopeScalingType.Llama3 && weights.RopeFrequencyFactors is null)
                weights = weights with { RopeFrequencyFactors = new WeightVector("rope_freqs.weight", HfModelConfig.Llama3FrequencyFactors(config)) };
            return new LoadedModel(path, config, Bind(config, weights, options), null, quantized is null ? model : new OwnedPair(quantized, model))
            {
                FileBytes = model.Shards.Sum(shard => shard.FileLength),
                QuantizedCheckpoint = quantized is null ? null
                    : $"{quantized.Description}; activations {(quantized.FloatActivations ? "f32 (exact)" : "q8 (fast)")}"
                        + (quantized.RoundedOutputHead is { } head ? $"; output head {head} rounded to {quantized.OutputHeadType} at load" : ""),
            };
        }
        catch (ModelFormatException e) { quantized?.Dispose(); model.Dispose(); throw e.WithFile(path); }
        catch { quantized?.Dispose(); model.Dispose(); throw; }
    }

    /// <summary>Two things disposed together, the first first (repacked weights before the file they came from).</summary>
    sealed class OwnedPair(IDisposable first, IDisposable second) : IDisposable
    {
        public void Dispose() { first.Dispose(); second.Dispose(); }
    }

    /// <summary>The model's tokenizer: from GGUF metadata, or tokenizer.json beside Hugging Face weights.</summary>
    public Engine.Tokenizers.ITokenizer Tokenizer => _tokenizer ??= LoadTokenizer();
    Engine.Tokenizers.ITokenizer? _tokenizer;

    Engine.Tokenizers.ITokenizer LoadTokenizer()
    {
        if (GgufMetadata is not null) return Engine.Tokenizers.TokenizerFactory.FromGguf(GgufMetadata);
        string folder = Directory.Exists(Path) ? Path : System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!;
        var json = System.IO.Path.Combine(folder, "tokenizer.json");
        if (!File.Exists(json))
            throw new ModelFormatException(FormatErrorKind.MissingKey, "no tokenizer.json beside the weights: pass token ids with --tokens, or add the model's tokenizer.json",
                field: "tokenizer.json", filePath: folder);
        return Engine.Tokenizers.TokenizerFactory.FromTokenizerJson(json);
    }

    /// <summary>The chat template named in the metadata (never executed: only recognized).</summary>
    public string? ChatTemplateText => GgufMetadata is not null ? GgufMetadata.GetStringOrNull(GgufKeys.ChatTemplate) : _hfChatTemplate.Value;

    /// <summary>Hugging Face keeps the template in tokenizer_config.json's chat_template: one string, or a list of named
    /// templates of which "default" is the chat one. A missing or unreadable file means no template (the template is
    /// only recognized, so a damaged one must not stop the model from loading).</summary>
    readonly Lazy<string?> _hfChatTemplate;

    string? ReadHfChatTemplate()
    {
        string folder = Directory.Exists(Path) ? Path : System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!;
        var file = System.IO.Path.Combine(folder, "tokenizer_config.json");
        if (!File.Exists(file) || new FileInfo(file).Length > 64 << 20) return null;
        try
        {
            using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(file));
            if (!json.RootElement.TryGetProperty("chat_template", out var template)) return null;
            if (template.ValueKind == System.Text.Json.JsonValueKind.String) return template.GetString();
            if (template.ValueKind == System.Text.Json.JsonValueKind.Array)
                foreach (var named in template.EnumerateArray())
                    if (named.ValueKind == System.Text.Json.JsonValueKind.Object && named.TryGetProperty("name", out var name) && name.ValueEquals("default")
                        && named.TryGetProperty("template", out var text) && text.ValueKind == System.Text.Json.JsonValueKind.String)
                        return text.GetString();
            return null;
        }
        catch (System.Text.Json.JsonException) { return null; }
    }

    public void Dispose()
    {
        Model.Dispose();
        _file.Dispose();
    }
}
