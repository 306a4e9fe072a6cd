using Engine.Formats;
using Engine.Formats.HuggingFace;
using Engine.Formats.Safetensors;
using Engine.Models;

namespace Engine.Cli.Commands;

/// <summary>Inspection of Safetensors files and Hugging Face folders (config.json + shards).</summary>
public static class SafetensorsInspection
{
    public static InspectReport Inspect(string path)
    {
        using var model = SafetensorsModel.Open(path);
        string folder = Directory.Exists(path) ? path : Path.GetDirectoryName(Path.GetFullPath(path))!;
        var report = new InspectReport
        {
            Path = path,
            Format = model.Shards.Count > 1 ? $"Safetensors ({model.Shards.Count} shards)" : "Safetensors",
            FileSize = model.Shards.Sum(s => s.FileLength),
        };
        var configPath = Path.Combine(folder, "config.json");
        if (File.Exists(configPath))
        {
            var hf = HfConfig.Load(configPath);
            report.Architecture = hf.Architectures.Count > 0 ? string.Join(", ", hf.Architectures) : hf.ModelType;
            report.Extra["model_type"] = hf.ModelType;
            if (hf.TorchDtype is not null) report.Extra["torch_dtype"] = hf.TorchDtype;
            if (QuantizedLinearSource.DescribeFolder(folder) is { } quantization)
            {
                report.Extra["quantization"] = quantization;
                report.Extra["quantized_linears"] = model.Tensors.Count(t => t.Name.EndsWith(".qweight", StringComparison.Ordinal)).ToString();
            }
            try { report.Hyperparameters = InspectCommand.Hyperparameters(HfModelConfig.Read(hf, model.Contains("lm_head.weight") || model.Contains("lm_head.qweight"))); }
            catch (ModelFormatException e) { report.Notes.Add("not runnable by this engine: " + e.Detail); }
        }
        else report.Notes.Add("no config.json beside the weights");
        if (File.Exists(Path.Combine(folder, "tokenizer.json"))) report.Tokenizer.Add(new("tokenizer.json", "present"));
        foreach (var shard in model.Shards)
            foreach (var (key, value) in shard.Metadata)
                report.Metadata.Add(($"{Path.GetFileName(shard.FilePath)}: {key}", "string", value));
        foreach (var t in model.Tensors)
            report.Tensors.Add((t.Name, t.DType.ToString(), t.Shape, t.ByteSize, t.FileOffset));
        return report;
    }
}
