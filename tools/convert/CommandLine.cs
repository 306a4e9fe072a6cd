using System.Globalization;
using Engine.Convert.Presets;
using Engine.Convert.Quant;

namespace Engine.Convert;

/// <summary>Parses `synth` options into <see cref="SynthOptions"/>; every mistake is a <see cref="ConvertException"/>
/// naming the option.</summary>
public static class CommandLine
{
    public static SynthOptions ParseSynth(IReadOnlyList<string> args)
    {
        string? preset = null, type = null, output = null, vocab = null, format = null;
        ulong seed = 0;
        int? layers = null, pool = null, groupSize = null;
        bool force = false, dryRun = false, actOrder = false, asym = false;
        for (int i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count ? args[++i] : throw new ConvertException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--preset": preset = Value(); break;
                case "--type": type = Value(); break;
                case "-o" or "--output": output = Value(); break;
                case "--vocab": vocab = Value(); break;
                case "--format": format = Value(); break;
                case "--force": force = true; break;
                case "--dry-run": dryRun = true; break;
                case "--act-order": actOrder = true; break;
                case "--asym": asym = true; break;
                case "--group-size":
                    var g = Value();
                    if (!int.TryParse(g, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int group) || (group < 1 && group != -1))
                        throw new ConvertException($"--group-size must be a positive integer or -1 (one group per row), not '{g}'");
                    groupSize = group;
                    break;
                case "--seed":
                    var s = Value();
                    if (!ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out seed))
                        throw new ConvertException($"--seed must be a non-negative integer, not '{s}'");
                    break;
                case "--layers":
                    var l = Value();
                    if (!int.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n < 1)
                        throw new ConvertException($"--layers must be a positive integer, not '{l}'");
                    layers = n;
                    break;
                case "--pool":
                    var q = Value();
                    if (!int.TryParse(q, NumberStyles.None, CultureInfo.InvariantCulture, out int size) || size < 1024)
                        throw new ConvertException($"--pool must be an integer >= 1024, not '{q}'");
                    pool = size;
                    break;
                default: throw new ConvertException($"unknown option '{args[i]}'");
            }
        }
        if (preset is null) throw new ConvertException("--preset is required (see `engine-convert presets`)");
        string formatName = format?.ToLowerInvariant() ?? "gguf";
        Int4Method? int4 = formatName switch { "gptq" => Int4Method.Gptq, "awq" => Int4Method.Awq, _ => null };
        // A GPTQ / AWQ folder's other tensors (embeddings, norms, biases) are float16, as real checkpoints keep them.
        if (type is null && int4 is null) throw new ConvertException($"--type is required: {TypeNames}");
        type ??= "F16";
        if (output is null) throw new ConvertException("-o OUT is required");
        var p = PresetCatalog.Find(preset) ?? throw new ConvertException(
            $"unknown preset '{preset}' (known: {string.Join(", ", PresetCatalog.All.Select(x => x.Name))})");
        var t = OutputType.Find(type) ?? throw new ConvertException($"unknown type '{type}' (known: {TypeNames})");
        var f = formatName switch
        {
            "gguf" => OutputFormat.Gguf,
            "safetensors" or "gptq" or "awq" => OutputFormat.Safetensors,
            _ => throw new ConvertException($"unknown format '{format}' (gguf, safetensors, gptq or awq)"),
        };
        if (int4 is null && (groupSize is not null || actOrder || asym))
            throw new ConvertException("--group-size, --act-order and --asym apply to --format gptq or awq only");
        if (int4 is not null && !t.IsFloat)
            throw new ConvertException($"--type {t.Name}: a {formatName} folder keeps its other tensors in F16, BF16 or F32");
        if (int4 == Int4Method.Awq && (actOrder || asym))
            throw new ConvertException("AWQ has no act-order and is always zero-point (asymmetric): drop --act-order / --asym");
        if (int4 == Int4Method.Awq && groupSize == -1)
            throw new ConvertException("AWQ needs a positive --group-size (it has no whole-row groups)");
        if (layers is int count) p = p.WithLayers(count);
        var options = new SynthOptions(p, t, output)
        {
            Seed = seed, Format = f, VocabPath = vocab, Overwrite = force, DryRun = dryRun,
            Int4 = int4 is { } method ? new Int4Settings(method, groupSize ?? 128, Symmetric: method == Int4Method.Gptq && !asym, ActOrder: actOrder) : null,
        };
        return pool is int poolLength ? options with { PoolLength = poolLength } : options;
    }

    static string TypeNames => string.Join(", ", OutputType.All.Select(t => t.Name));
}
