using System.Text.Json;

namespace Engine.Formats.HuggingFace;

/// <summary>The two 4-bit checkpoint families whose folders the engine runs as they are.</summary>
internal enum HfQuantMethod { Gptq, Awq }

/// <summary>The <c>quantization_config</c> of a GPTQ or AWQ checkpoint: config.json's block, or AutoGPTQ's
/// quantize_config.json (older AutoAWQ folders: quant_config.json with w_bit / q_group_size). Only the settings whose
/// on-disk layout the engine reads are accepted; anything else is refused here, naming the setting and what is
/// supported, so a checkpoint in another layout never loads as garbage.</summary>
internal sealed record HfQuantizationConfig
{
    public required HfQuantMethod Method { get; init; }
    public int Bits { get; init; } = 4;
    /// <summary>Input rows per group; -1 in the file (one group over the whole input) is kept as -1.</summary>
    public required int GroupSize { get; init; }
    /// <summary>GPTQ act-order: g_idx is a permuted grouping.</summary>
    public bool DescAct { get; init; }
    /// <summary>GPTQ symmetric: every zero is 8.</summary>
    public bool Sym { get; init; } = true;
    /// <summary>Where the settings were read from (for messages).</summary>
    public required string Source { get; init; }

    /// <summary>Input rows of one group for a layer with `inputs` inputs.</summary>
    public int GroupRows(int inputs) => GroupSize == -1 ? inputs : GroupSize;

    /// <summary>The folder's quantization settings, or null for a checkpoint that declares none.</summary>
    public static HfQuantizationConfig? Load(string folder)
    {
        var config = Path.Combine(folder, "config.json");
        if (File.Exists(config) && ReadObject(config, "quantization_config") is { } fromConfig) return fromConfig;
        foreach (var name in new[] { "quantize_config.json", "quant_config.json" })
        {
            var path = Path.Combine(folder, name);
            if (File.Exists(path) && ReadObject(path, null) is { } found) return found;
        }
        return null;
    }

    static HfQuantizationConfig? ReadObject(string path, string? property)
    {
        if (new FileInfo(path).Length > HfConfig.MaxFileLength)
            throw new ModelFormatException(FormatErrorKind.LengthTooLarge, $"{Path.GetFileName(path)} is over the size cap", filePath: path);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = 64 }); }
        catch (JsonException e)
        {
            throw new ModelFormatException(FormatErrorKind.InvalidConfig, $"{Path.GetFileName(path)} is not valid JSON: {e.Message}", filePath: path, inner: e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException(FormatErrorKind.InvalidConfig, $"{Path.GetFileName(path)} must hold a JSON object", filePath: path);
            var root = new JsonConfigReader(doc.RootElement, path);
            var block = property is null ? root : root.Object(property);
            return block is null ? null : Parse(block, property is null ? Path.GetFileName(path) : $"config.json {property}");
        }
    }

    /// <summary>Reads and checks one settings object (the fields named as the writers spell them).</summary>
    public static HfQuantizationConfig Parse(JsonConfigReader r, string source)
    {
        string method = (r.String("quant_method") ?? (r.Has("w_bit") || r.Has("version") ? "awq" : throw r.Missing("quant_method"))).ToLowerInvariant();
        if (method is not ("gptq" or "awq"))
            throw new ModelFormatException(FormatErrorKind.InvalidConfig, $"quant_method \"{method}\" is not supported: only gptq and awq (4-bit) are",
                r.FieldName("quant_method"), null, "gptq or awq", method, r.FilePath);
        long bits = r.Integer("bits") ?? r.Integer("w_bit") ?? throw r.Missing("bits");
        if (bits != 4)
            throw new ModelFormatException(FormatErrorKind.InvalidConfig, $"{bits}-bit {method} checkpoints are not supported (only 4-bit ones)",
                r.FieldName(r.Has("bits") ? "bits" : "w_bit"), null, "4", bits.ToString(), r.FilePath);
        long group = r.Integer("group_size") ?? r.Integer("q_group_size") ?? throw r.Missing("group_size");
        if (group != -1 && group < 1 || group > int.MaxValue)
            throw r.OutOfRange("group_size", "a positive number of input rows, or -1 for one group", group.ToString());
        switch (method)
        {
            case "gptq":
            {
                string format = r.String("checkpoint_format") ?? "gptq";
                if (format != "gptq")
                    throw new ModelFormatException(FormatErrorKind.InvalidConfig,
                        $"GPTQ checkpoint_format \"{format}\" is not supported: only \"gptq\" (v1, the default) is; gptq_v2, marlin, bitblas, ipex and qqq store other layouts",
                        r.FieldName("checkpoint_format"), null, "gptq", format, r.FilePath);
                if (r.Object("exllama_config") is { } exllama && exllama.Integer("version") is { } v && v != 1 && r.Bool("use_exllama") == true)
                    throw new ModelFormatException(FormatErrorKind.InvalidConfig,
                        "GPTQ exllama_config.version 2 is not supported: only checkpoints in the plain GPTQ v1 layout are",
                        r.FieldName("exllama_config.version"), null, "1", v.ToString(), r.FilePath);
                return new HfQuantizationConfig
                {
                    Method = HfQuantMethod.Gptq, GroupSize = (int)group, DescAct = r.Bool("desc_act") ?? false, Sym = r.Bool("sym") ?? true, Source = source,
                };
            }
            case "awq":
            {
                string version = (r.String("version") ?? "gemm").ToLowerInvariant();
                if (version != "gemm")
                    throw new ModelFormatException(FormatErrorKind.InvalidConfig,
                        $"AWQ version \"{version}\" is not supported: only \"gemm\" is (gemv, gemv_fast, marlin and exllama store other layouts)",
                        r.FieldName("version"), null, "gemm", version, r.FilePath);
                if (r.Bool("zero_point") == false)
                    throw new ModelFormatException(FormatErrorKind.InvalidConfig, "AWQ zero_point false is not supported: only zero-point checkpoints are",
                        r.FieldName("zero_point"), null, "true", "false", r.FilePath);
                if (group == -1)
                    throw r.OutOfRange("group_size", "a positive number of input rows (AWQ has no whole-input groups)", "-1");
                return new HfQuantizationConfig { Method = HfQuantMethod.Awq, GroupSize = (int)group, Sym = false, Source = source };
            }
            default:
                throw new ModelFormatException(FormatErrorKind.InvalidConfig, $"quant_method \"{method}\" is not supported: only gptq and awq (4-bit) are",
                    r.FieldName("quant_method"), null, "gptq or awq", method, r.FilePath);
        }
    }
}
