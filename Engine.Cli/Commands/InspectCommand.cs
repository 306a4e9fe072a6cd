using System.Text;
using System.Text.Json;
using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Models;

namespace Engine.Cli.Commands;

/// <summary>`engine inspect FILE_OR_FOLDER [--json]`: what a model file holds, without loading weights.</summary>
internal static class InspectCommand
{
    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, new HashSet<string> { "json", "help", "h" });
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine("usage: engine inspect FILE_OR_FOLDER [--json]"); return 0; }
        bool json = cl.Has("json");
        cl.RejectUnknown();
        if (cl.Positionals.Count != 1) throw new UsageException("inspect takes one file or folder");
        var path = cl.Positionals[0];
        if (!File.Exists(path) && !Directory.Exists(path)) throw new UsageException($"no such file or folder: {path}");
        var report = Directory.Exists(path) || !IsGguf(path) ? SafetensorsInspection.Inspect(path) : InspectGguf(path);
        Console.Out.Write(json ? report.ToJson() : report.ToText());
        return 0;
    }

    static bool IsGguf(string path)
    {
        using var stream = File.OpenRead(path);
        Span<byte> head = stackalloc byte[4];
        int n = stream.ReadAtLeast(head, 4, throwOnEndOfStream: false);
        if (GgufFile.HasMagic(head[..n])) return true;
        if (path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
        {
            using var probe = GgufFile.Open(path); // throws the precise format error (too short, bad magic)
        }
        return false;
    }

    static InspectReport InspectGguf(string path)
    {
        // A split model is shown whole, from its first part, as the loader opens it; another part alone.
        using var files = OpensAsModel(path) ? GgufModelFiles.Open(path) : null;
        using var single = files is null ? GgufFile.Open(path) : null;
        var file = files?.First ?? single!;
        var md = file.Metadata;
        var report = new InspectReport { Path = path, Format = "GGUF", Version = file.Version.ToString(), FileSize = files?.TotalSize ?? file.FileSize };
        report.Architecture = md.TryGetValue(GgufKeys.Architecture, out var a) ? a.Value as string : null;
        report.Extra["alignment"] = file.Alignment.ToString();
        report.Extra["data_offset"] = file.DataOffset.ToString();
        if (files is { Parts.Count: > 1 })
            report.Extra["split"] = $"{files.Parts.Count} parts: " + string.Join(", ", files.Parts.Select(p => $"{Path.GetFileName(p.Path)} ({p.Tensors.Count} tensors, {p.FileSize:N0} bytes)"));
        else if (single is not null)
            report.Notes.Add($"part {SplitValue(file, GgufModelFiles.SplitNo) + 1} of {SplitValue(file, GgufModelFiles.SplitCount)} of a split GGUF: the model's metadata and its other tensors are in the other parts; inspect the first part to see the whole model");
        var tensors = files?.Tensors.ToList() ?? [.. file.Tensors.Select(t => (file, t))];
        if (tensors.Count == 0)
            report.Notes.Add("vocabulary only: the file holds no tensors");
        else if (report.Architecture is not null)
        {
            try { report.Hyperparameters = Hyperparameters(files is not null ? GgufModelConfig.Read(files) : GgufModelConfig.Read(file)); }
            catch (ModelFormatException e) { report.Notes.Add("not runnable by this engine: " + e.Detail + (e.Field is null ? "" : $" [{e.Field}]")); }
        }
        report.Tokenizer = TokenizerSummary(md);
        foreach (var (key, value) in file.MetadataList)
            report.Metadata.Add(new(key, value.TypeName, GgufValue.Format(value, 8)));
        // Offsets are within the tensor's own part.
        foreach (var (part, t) in tensors)
            report.Tensors.Add(new(t.Name, t.Type.ToString(), t.Shape, t.ByteSize, part.DataOffset + t.Offset));
        return report;
    }

    /// <summary>Whether the file is a whole model or the first part of a split one (not a later part).</summary>
    static bool OpensAsModel(string path)
    {
        using var probe = GgufFile.Open(path);
        return SplitValue(probe, GgufModelFiles.SplitCount) <= 1 || SplitValue(probe, GgufModelFiles.SplitNo) == 0;
    }

    static long SplitValue(GgufFile file, string key) => file.Metadata.GetIntegerOrNull(key) ?? 0;

    public static List<KeyValuePair<string, string>> Hyperparameters(ModelConfig c) =>
    [
        new("embedding_length", c.EmbeddingLength.ToString()),
        new("block_count", c.LayerCount.ToString()),
        new("head_count", c.HeadCount.ToString()),
        new("head_count_kv", c.KvHeadCount.ToString()),
        new("head_dim", c.HeadDim.ToString()),
        new("feed_forward_length", c.FeedForwardLength.ToString()),
        new("vocab_size", c.VocabSize.ToString()),
        new("context_length", c.TrainedContextLength.ToString()),
        new("rms_epsilon", c.RmsNormEpsilon.ToString("R")),
        new("rope", $"{c.RopeStyle}, theta {c.RopeTheta}, {c.RopeDimensions} dims, scaling {c.RopeScaling.Type}"),
        new("output", c.TiedOutput ? "tied to token_embd" : "separate output.weight"),
        .. Experts(c),
    ];

    static List<KeyValuePair<string, string>> Experts(ModelConfig c)
    {
        if (c.ExpertCount == 0) return [];
        int moeLayers = Enumerable.Range(0, c.LayerCount).Count(c.IsMoeLayer);
        var experts = new List<KeyValuePair<string, string>>
        {
            new("experts", $"{c.ExpertCount}, {c.ExpertsPerToken} per token, feed-forward {c.ExpertFeedForwardLength} each, " +
                $"{c.ExpertGating.ToString().ToLowerInvariant()} router, weights {(c.NormalizeExpertWeights ? "renormalized" : "as routed")}"),
            new("moe_layers", $"{moeLayers} of {c.LayerCount}"),
        };
        if (c.SharedExpertFeedForwardLength > 0) experts.Add(new("shared_expert", $"feed-forward {c.SharedExpertFeedForwardLength}, sigmoid gate"));
        return experts;
    }

    static List<KeyValuePair<string, string>> TokenizerSummary(IReadOnlyDictionary<string, GgufValue> md)
    {
        var s = new List<KeyValuePair<string, string>>();
        void Add(string name, string key) { if (md.TryGetValue(key, out var v)) s.Add(new(name, v.IsArray ? $"{v.ArrayLength} entries" : GgufValue.Format(v, 1))); }
        Add("model", GgufKeys.TokenizerModel);
        Add("pre", GgufKeys.TokenizerPre);
        Add("tokens", GgufKeys.Tokens);
        Add("merges", GgufKeys.Merges);
        Add("bos", GgufKeys.BosId);
        Add("eos", GgufKeys.EosId);
        Add("eot", GgufKeys.EotId);
        Add("add_bos", GgufKeys.AddBos);
        if (md.TryGetValue(GgufKeys.ChatTemplate, out var t) && t.Value is string template)
            s.Add(new("chat_template", $"{template.Length} characters"));
        return s;
    }
}

/// <summary>Everything inspect prints, for text and JSON alike.</summary>
public sealed class InspectReport
{
    public required string Path { get; init; }
    public required string Format { get; init; }
    public string? Version { get; init; }
    public long FileSize { get; init; }
    public string? Architecture { get; set; }
    public Dictionary<string, string> Extra { get; } = new();
    public List<KeyValuePair<string, string>>? Hyperparameters { get; set; }
    public List<KeyValuePair<string, string>> Tokenizer { get; set; } = [];
    public List<string> Notes { get; } = [];
    public List<(string Key, string Type, string Value)> Metadata { get; } = [];
    public List<(string Name, string Type, IReadOnlyList<long> Shape, long Bytes, long Offset)> Tensors { get; } = [];

    public string ToText()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"file:         {Path}");
        sb.AppendLine($"format:       {Format}{(Version is null ? "" : " v" + Version)}, {FileSize:N0} bytes");
        foreach (var (k, v) in Extra) sb.AppendLine($"{k + ":",-14}{v}");
        sb.AppendLine($"architecture: {Architecture ?? "(none)"}");
        foreach (var n in Notes) sb.AppendLine($"note:         {n}");
        if (Hyperparameters is not null)
        {
            sb.AppendLine("hyperparameters:");
            foreach (var (k, v) in Hyperparameters) sb.AppendLine($"  {k,-22}{v}");
        }
        if (Tokenizer.Count > 0)
        {
            sb.AppendLine("tokenizer:");
            foreach (var (k, v) in Tokenizer) sb.AppendLine($"  {k,-22}{v}");
        }
        sb.AppendLine($"metadata ({Metadata.Count}):");
        foreach (var (k, t, v) in Metadata) sb.AppendLine($"  {k,-44} {t,-16} {v}");
        sb.AppendLine($"tensors ({Tensors.Count}, {Tensors.Sum(t => t.Bytes):N0} bytes):");
        int nameWidth = Math.Max(20, Tensors.Count == 0 ? 0 : Tensors.Max(t => t.Name.Length));
        sb.AppendLine($"  {"name".PadRight(nameWidth)} {"type",-8} {"shape",-24} {"bytes",14} {"offset",14}");
        foreach (var t in Tensors)
            sb.AppendLine($"  {t.Name.PadRight(nameWidth)} {t.Type,-8} {"[" + string.Join(", ", t.Shape) + "]",-24} {t.Bytes,14:N0} {t.Offset,14:N0}");
        return sb.ToString();
    }

    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("path", Path);
            w.WriteString("format", Format);
            if (Version is not null) w.WriteString("version", Version);
            w.WriteNumber("file_size", FileSize);
            if (Architecture is null) w.WriteNull("architecture"); else w.WriteString("architecture", Architecture);
            foreach (var (k, v) in Extra) w.WriteString(k, v);
            w.WriteStartArray("notes"); foreach (var n in Notes) w.WriteStringValue(n); w.WriteEndArray();
            if (Hyperparameters is not null) { w.WriteStartObject("hyperparameters"); foreach (var (k, v) in Hyperparameters) w.WriteString(k, v); w.WriteEndObject(); }
            w.WriteStartObject("tokenizer"); foreach (var (k, v) in Tokenizer) w.WriteString(k, v); w.WriteEndObject();
            w.WriteStartArray("metadata");
            foreach (var (k, t, v) in Metadata) { w.WriteStartObject(); w.WriteString("key", k); w.WriteString("type", t); w.WriteString("value", v); w.WriteEndObject(); }
            w.WriteEndArray();
            w.WriteStartArray("tensors");
            foreach (var t in Tensors)
            {
                w.WriteStartObject();
                w.WriteString("name", t.Name); w.WriteString("type", t.Type);
                w.WriteStartArray("shape"); foreach (var d in t.Shape) w.WriteNumberValue(d); w.WriteEndArray();
                w.WriteNumber("bytes", t.Bytes); w.WriteNumber("offset", t.Offset);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray()) + Environment.NewLine;
    }
}
