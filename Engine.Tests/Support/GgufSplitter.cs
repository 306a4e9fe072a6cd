using Engine.Formats.Gguf;

namespace Engine.Tests.Support;

/// <summary>
/// Splits a GGUF file as llama.cpp's `llama-gguf-split --split --split-max-tensors N` does, byte for byte (checked
/// against the tool's output in SplitGgufTests): parts of N tensors in file order; the first part holds every key of
/// the source then split.no (u16), split.tensors.count (i32) and split.count (u16), in that order (gguf-split sets
/// split.count to a placeholder first and gguf_set_val re-appends a key it replaces); the other parts hold only those
/// three keys. Tensor data is copied unchanged, each tensor padded to 32 bytes (a part without tensors: its header). With `noTensorsInFirst`
/// (--no-tensor-first-split) the first part holds the metadata alone and the tensors start in the second.
/// </summary>
internal static class GgufSplitter
{
    public static List<byte[]> Split(GgufFile source, int maxTensors, bool noTensorsInFirst = false)
    {
        int tensors = source.Tensors.Count, skip = noTensorsInFirst ? 1 : 0, parts = skip + (tensors + maxTensors - 1) / maxTensors;
        var result = new List<byte[]>();
        for (int p = 0; p < parts; p++)
        {
            var writer = new GgufWriter();
            if (p == 0)
                foreach (var (key, value) in source.MetadataList) writer.AddMetadata(key, value);
            writer.AddMetadata("split.no", (ushort)p).AddMetadata("split.tensors.count", tensors).AddMetadata("split.count", (ushort)parts);
            foreach (var t in p < skip ? [] : source.Tensors.Skip((p - skip) * maxTensors).Take(maxTensors))
                writer.AddTensor(t.Name, t.Type, [.. t.Shape], source.GetTensor(t.Name).Bytes.ToArray());
            var bytes = writer.ToArray();
            // gguf-split writes the header padded to the alignment also when no tensor data follows.
            if (writer.TensorCount == 0 && bytes.Length % writer.Alignment != 0)
                Array.Resize(ref bytes, (int)((bytes.Length + writer.Alignment - 1) / writer.Alignment * writer.Alignment));
            result.Add(bytes);
        }
        return result;
    }

    /// <summary>The parts' file names for a model saved as PREFIX.gguf (llama_split_path: PREFIX-%05d-of-%05d.gguf).</summary>
    public static string PartName(string prefix, int index, int count) => $"{prefix}-{index + 1:00000}-of-{count:00000}.gguf";

    /// <summary>Splits `source` into `folder` as PREFIX-0000i-of-0000n.gguf; returns the parts' paths.</summary>
    public static List<string> SplitTo(string source, int maxTensors, string folder, string prefix, bool noTensorsInFirst = false)
    {
        using var file = GgufFile.Open(source);
        var parts = Split(file, maxTensors, noTensorsInFirst);
        var paths = new List<string>();
        for (int i = 0; i < parts.Count; i++)
        {
            var path = Path.Combine(folder, PartName(prefix, i, parts.Count));
            File.WriteAllBytes(path, parts[i]);
            paths.Add(path);
        }
        return paths;
    }
}
