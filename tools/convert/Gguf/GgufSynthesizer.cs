using Engine.Quantization;
using System.Diagnostics;
using Engine.Convert.Model;
using Engine.Convert.Output;
using Engine.Convert.Weights;
using Engine.Formats.Gguf;

namespace Engine.Convert.Gguf;

/// <summary>Writes a random-weight GGUF of a preset's shape: metadata and tensor infos first, then each tensor's data
/// generated and encoded as it is written, so memory stays at a few encoded-row caches whatever the model size.</summary>
public static class GgufSynthesizer
{
    public static SynthResult Write(SynthOptions o, TextWriter? log, CancellationToken cancel = default)
    {
        var clock = Stopwatch.StartNew();
        var preset = o.Preset;
        var tokenizer = TokenizerMetadata.Load(VocabLocator.Locate(preset.VocabFile, o.VocabPath), preset.VocabSize);
        var tensors = ModelLayout.Plan(preset, o.Type, tokenizer.TokenCount);
        foreach (var t in tensors)
            if (!RowEncoder.CanEncode(t.Type))
                throw new ConvertException($"{t.Spec.Name} would be {t.Type}, which the engine cannot write");

        var writer = new GgufWriter();
        ModelMetadata.Add(writer, preset, o.Type, tokenizer, o.Seed);
        var data = new TensorDataWriter(new NormalPool(o.Seed, o.PoolLength), o.Seed, preset);
        ProgressStream? progress = null; // exists once the file is open; the delegates below run after that
        for (int i = 0; i < tensors.Count; i++)
        {
            var (spec, type) = (tensors[i].Spec, tensors[i].Type);
            int number = i + 1;
            writer.AddTensor(spec.Name, type, spec.Shape, tensors[i].ByteSize, stream =>
            {
                progress!.TensorNumber = number;
                progress.TensorName = spec.Name;
                data.Write(spec, type, stream);
            });
        }

        long parameters = tensors.Sum(t => t.Spec.ElementCount);
        string typeCounts = ModelLayout.TypeCounts(tensors);
        long fileBytes = writer.FileSize;
        string padded = tokenizer.TokenCount == tokenizer.OriginalTokenCount ? "" : $", padded to {tokenizer.TokenCount}";
        log?.WriteLine($"{preset.Name} {o.Type}: {tensors.Count} tensors, {Units.Count(parameters)} parameters, " +
                       $"tokenizer {Path.GetFileName(tokenizer.SourcePath)} ({tokenizer.OriginalTokenCount} tokens{padded}) -> {o.OutputPath} ({Units.Size(fileBytes)})");
        log?.WriteLine($"types: {typeCounts}");
        if (o.DryRun)
        {
            foreach (var t in tensors) log?.WriteLine($"  {t.Spec.Name,-32} {t.Type,-6} {t.Spec.ShapeText,-22} {t.ByteSize,14:N0}");
            return new SynthResult(Path.GetFullPath(o.OutputPath), fileBytes, tensors.Count, parameters, typeCounts, clock.Elapsed);
        }

        PartFile.Write(o.OutputPath, o.Overwrite, fileBytes, file =>
        {
            progress = new ProgressStream(file, log, fileBytes, tensors.Count, cancel);
            writer.WriteTo(progress);
            progress.Report(final: true);
            if (progress.Written != fileBytes)
                throw new InvalidOperationException($"wrote {progress.Written} bytes, expected {fileBytes}");
        });
        log?.WriteLine($"done in {clock.Elapsed.TotalSeconds:0.0} s: {o.OutputPath}");
        return new SynthResult(Path.GetFullPath(o.OutputPath), fileBytes, tensors.Count, parameters, typeCounts, clock.Elapsed);
    }
}
