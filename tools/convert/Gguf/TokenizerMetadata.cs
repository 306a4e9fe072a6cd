using Engine.Formats.Gguf;

namespace Engine.Convert.Gguf;

/// <summary>The tokenizer.* metadata of a vocab GGUF, ready to copy into a model file, padded to the model's
/// embedding rows the way llama.cpp's converter pads a vocabulary smaller than vocab_size: "[PADn]" tokens of type
/// UNUSED (SentencePiece scores -1000). Real Qwen checkpoints have 151,936 rows for about 151,669 tokens.</summary>
public sealed record TokenizerMetadata(string SourcePath, int TokenCount, int OriginalTokenCount, IReadOnlyList<KeyValuePair<string, GgufValue>> Entries)
{
    const int UnusedTokenType = 5; // llama_token_type LLAMA_TOKEN_TYPE_UNUSED
    const float PadScore = -1000f;

    /// <param name="rows">The embedding rows to pad to; null keeps the tokenizer's own size.</param>
    public static TokenizerMetadata Load(string path, int? rows)
    {
        GgufFile file;
        try { file = GgufFile.Open(path); }
        catch (Exception e) when (e is IOException or Engine.Formats.ModelFormatException or UnauthorizedAccessException)
        {
            throw new ConvertException($"cannot read vocab file {path}: {e.Message}");
        }
        using (file)
        {
            var tokens = file.Metadata.GetValueOrDefault(GgufKeys.Tokens)?.Value as string[]
                ?? throw new ConvertException($"{path} has no tokenizer.ggml.tokens array");
            int count = tokens.Length, target = rows ?? count;
            if (count > target)
                throw new ConvertException($"{path} has {count} tokens, more than the {target} embedding rows of the preset");
            var entries = new List<KeyValuePair<string, GgufValue>>();
            foreach (var (key, value) in file.MetadataList)
            {
                if (!key.StartsWith("tokenizer.", StringComparison.Ordinal)) continue;
                entries.Add(new(key, Pad(key, value, count, target)));
            }
            return new TokenizerMetadata(path, target, count, entries);
        }
    }

    static GgufValue Pad(string key, GgufValue value, int count, int target)
    {
        if (count == target || !value.IsArray || value.ArrayLength != count) return value;
        object padded = value.Value switch
        {
            string[] tokens when key == GgufKeys.Tokens => Extend(tokens, target, i => $"[PAD{i}]"),
            int[] types when key == GgufKeys.TokenTypes => Extend(types, target, _ => UnusedTokenType),
            float[] scores when key == GgufKeys.Scores => Extend(scores, target, _ => PadScore),
            _ => throw new ConvertException($"cannot pad the per-token array {key} ({value.TypeName}) to {target} tokens"),
        };
        return new GgufValue(GgufValueType.Array, padded, value.ElementType);
    }

    static T[] Extend<T>(T[] source, int length, Func<int, T> padding)
    {
        var result = new T[length];
        source.CopyTo(result, 0);
        for (int i = source.Length; i < length; i++) result[i] = padding(i);
        return result;
    }
}
