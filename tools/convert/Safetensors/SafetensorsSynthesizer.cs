using Engine.Quantization;
using System.Diagnostics;
using Engine.Convert.Gguf;
using Engine.Convert.Model;
using Engine.Convert.Output;
using Engine.Convert.Weights;
using Engine.Formats;
using Engine.Formats.Gguf;

namespace Engine.Convert.Safetensors;

/// <summary>Writes a Hugging Face folder of a preset: config.json, model.safetensors (one file, every tensor in the
/// chosen float type, as checkpoints are saved) and, when found beside the vocab GGUFs, the family's tokenizer.json
/// and tokenizer_config.json. The weights are the same values the GGUF of the same preset and seed holds.</summary>
public static class SafetensorsSynthesizer
{
    public static SynthResult Write(SynthOptions o, TextWriter? log, CancellationToken cancel = default)
    {
        var clock = Stopwatch.StartNew();
        var preset = o.Preset;
        var dtype = o.Type.DefaultType;
        string dtypeName = dtype switch
        {
            GgmlType.F16 => "F16", GgmlType.BF16 => "BF16", GgmlType.F32 => "F32",
            _ => throw new ConvertException($"safetensors output is F16, BF16 or F32, not {o.Type}"),
        };
        var vocabPath = VocabLocator.Locate(preset.VocabFile, o.VocabPath);
        var tokenizer = TokenizerMetadata.Load(vocabPath, preset.VocabSize);
        var tensors = HfTensorNames.For(TensorPlan.For(preset, tokenizer.TokenCount));

        var writer = new SafetensorsStreamWriter();
        var data = new TensorDataWriter(new NormalPool(o.Seed, o.PoolLength), o.Seed, preset);
        ProgressStream? progress = null;
        var linears = o.Int4 is { } int4 ? new Int4Linears(data, int4, o.Seed) : null;
        for (int i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            int number = i + 1;
            if (linears is not null && Int4Linears.IsQuantized(t.Name))
            {
                foreach (var part in linears.Parts(t))
                    writer.Add(part.Name, part.DType, part.Shape, part.ByteSize, stream =>
                    {
                        progress!.TensorNumber = number;
                        progress.TensorName = part.Name;
                        stream.Write(part.Bytes());
                    });
                continue;
            }
            writer.Add(t.Name, dtypeName, t.Shape, RowEncoder.RowBytes(dtype, t.Source.RowLength) * t.RowCount, stream =>
            {
                progress!.TensorNumber = number;
                progress.TensorName = t.Name;
                if (t.RowCount == t.Source.RowCount) data.Write(t.Source, dtype, stream);
                else data.WriteRows(t.Source, dtype, stream, t.FirstRow, t.RowCount);
            });
        }

        string folder = Path.GetFullPath(o.OutputPath);
        if (File.Exists(folder)) throw new ConvertException($"{o.OutputPath} is a file; safetensors output is a folder");
        string model = Path.Combine(folder, "model.safetensors");
        long parameters = tensors.Sum(t => t.ElementCount);
        long fileBytes = writer.FileSize;
        string kind = o.Int4 is { } settings ? $"{settings.Name} (other tensors {o.Type})" : $"{o.Type}";
        log?.WriteLine($"{preset.Name} {kind} safetensors: {writer.Count} tensors, {Units.Count(parameters)} parameters -> {model} ({Units.Size(fileBytes)})");
        if (o.DryRun)
        {
            foreach (var (name, dt, shape) in writer.Table) log?.WriteLine($"  {name,-48} {dt,-4} [{string.Join(", ", shape)}]");
            return new SynthResult(folder, fileBytes, writer.Count, parameters, $"{dtype} {tensors.Count}", clock.Elapsed);
        }
        PartFile.Write(model, o.Overwrite, fileBytes, file =>
        {
            progress = new ProgressStream(file, log, fileBytes, tensors.Count, cancel);
            writer.WriteTo(progress);
            progress.Report(final: true);
        });

        long? bos = tokenizer.Entries.FirstOrDefault(e => e.Key == GgufKeys.BosId).Value?.AsInteger();
        long? eos = tokenizer.Entries.FirstOrDefault(e => e.Key == GgufKeys.EosId).Value?.AsInteger();
        File.WriteAllBytes(Path.Combine(folder, "config.json"), HfConfigJson.Build(preset, tokenizer.TokenCount, dtype, bos, eos, o.Int4));
        CopyTokenizerFiles(vocabPath, folder, log);
        log?.WriteLine($"done in {clock.Elapsed.TotalSeconds:0.0} s: {folder}");
        return new SynthResult(folder, fileBytes, writer.Count, parameters, $"{dtype} {tensors.Count}", clock.Elapsed);
    }

    /// <summary>The tokenizer.json of the vocab's family, from the folder beside ggml-vocab (shared/models/*-tokenizer),
    /// so the engine can tokenize text for the folder; without it only token ids can be given.</summary>
    static void CopyTokenizerFiles(string vocabPath, string folder, TextWriter? log)
    {
        string? family = Path.GetFileName(vocabPath) switch
        {
            "ggml-vocab-qwen2.gguf" => "qwen3-tokenizer", // the Qwen3 tokenizer.json; its BPE is Qwen2's
            "ggml-vocab-llama-bpe.gguf" => "llama3-tokenizer",
            _ => null,
        };
        var source = family is null ? null : Path.Combine(Path.GetDirectoryName(vocabPath)!, "..", family);
        if (source is null || !File.Exists(Path.Combine(source, "tokenizer.json")))
        {
            log?.WriteLine("no tokenizer.json found for this vocabulary; the folder has weights and config.json only");
            return;
        }
        // Copied as bytes rather than with File.Copy, which would carry over a read-only mode and block a later --force.
        foreach (var name in new[] { "tokenizer.json", "tokenizer_config.json" })
            if (File.Exists(Path.Combine(source, name))) File.WriteAllBytes(Path.Combine(folder, name), File.ReadAllBytes(Path.Combine(source, name)));
    }
}
