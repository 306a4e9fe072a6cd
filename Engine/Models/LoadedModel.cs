using Engine.Backends;
using Engine.Backends.Cpu;
using Engine.Formats;
using Engine.Formats.Gguf;

namespace Engine.Models;

/// <summary>Options for opening a model.</summary>
public sealed record ModelOptions
{
    public int Threads { get; init; }
    public int MaxBatch { get; init; } = 64;
}

/// <summary>A model file opened, validated and bound to a backend; owns the memory map.</summary>
public sealed class LoadedModel : IDisposable
{
    public string Path { get; }
    public ModelConfig Config { get; }
    public Llama Model { get; }
    /// <summary>GGUF metadata when the model came from a GGUF file (tokenizer, chat template).</summary>
    public IReadOnlyDictionary<string, GgufValue>? GgufMetadata { get; }
    readonly IDisposable _file;

    LoadedModel(string path, ModelConfig config, Llama model, IReadOnlyDictionary<string, GgufValue>? metadata, IDisposable file)
    {
        Path = path; Config = config; Model = model; GgufMetadata = metadata; _file = file;
    }

    public static LoadedModel Open(string path, ModelOptions? options = null)
    {
        options ??= new ModelOptions();
        if (Directory.Exists(path) || path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new ModelFormatException(FormatErrorKind.Io, "Safetensors models are not wired up yet", filePath: path);
        var file = GgufFile.Open(path);
        try
        {
            var config = GgufModelConfig.Read(file);
            var weights = LlamaWeights.Load(config, new GgufTensorSource(file));
            var backend = new CpuBackend(options.Threads);
            return new LoadedModel(path, config, new Llama(config, weights, backend, options.MaxBatch), file.Metadata, file);
        }
        catch (ModelFormatException e) { file.Dispose(); throw e.WithFile(path); }
        catch { file.Dispose(); throw; }
    }

    public void Dispose()
    {
        Model.Dispose();
        _file.Dispose();
    }
}
