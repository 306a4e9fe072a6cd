using System.Text.Json;
using Engine.Formats;
using Engine.Formats.Gguf;

namespace Engine.Conversion;

/// <summary>The tokenizer.* metadata llama.cpp's convert_hf_to_gguf.py writes for a Hugging Face folder: from
/// tokenizer.model (SentencePiece, tried first, as the converter does for Llama and Qwen) or tokenizer.json
/// (byte-level BPE), then the special tokens, add_bos/add_eos flags and chat template as gguf-py's SpecialVocab
/// reads them from tokenizer.json, tokenizer_config.json and config.json.</summary>
internal static class HfVocabulary
{
    // llama.cpp's token types (llama_token_type); SentencePiece numbers its piece types the same way.
    const int Normal = 1, Control = 3, UserDefined = 4, Unused = 5;

    // convert_hf_to_gguf_update.py names each known pre-tokenizer by hashing how Hugging Face tokenizes a check string;
    // without Hugging Face's tokenizers the same families are told apart by their split regex, which is what makes
    // those hashes differ. Only pre-tokenizers whose llama.cpp name we have checked against its vocab files are listed.
    static readonly Dictionary<string, string> PreTokenizerByRegex = new(StringComparer.Ordinal)
    {
        [@"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"] = "qwen2",
        [@"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"] = "llama-bpe",
    };

    // gguf-py SpecialVocab's token kinds and the GGUF key each is written under.
    static readonly (string Kind, string Key)[] SpecialKinds =
    [
        ("bos", GgufKeys.BosId), ("eos", GgufKeys.EosId), ("unk", GgufKeys.UnkId), ("sep", "tokenizer.ggml.seperator_token_id"),
        ("pad", GgufKeys.PadId), ("cls", "tokenizer.ggml.cls_token_id"), ("mask", "tokenizer.ggml.mask_token_id"),
    ];

    /// <summary>Adds the tokenizer metadata to <paramref name="writer"/>.</summary>
    /// <param name="writer">The GGUF being built.</param>
    /// <param name="folder">The Hugging Face folder.</param>
    /// <param name="vocabSize">config.json's vocab_size (the embedding rows): the vocabulary is padded to it.</param>
    /// <param name="config">config.json, for the *_token_id fallbacks.</param>
    public static void AddTo(GgufWriter writer, string folder, int vocabSize, JsonElement config)
    {
        string spm = Path.Combine(folder, "tokenizer.model"), json = Path.Combine(folder, "tokenizer.json");
        using var tokenizerJson = File.Exists(json) ? ReadJson(json) : null;
        using var tokenizerConfig = File.Exists(Path.Combine(folder, "tokenizer_config.json")) ? ReadJson(Path.Combine(folder, "tokenizer_config.json")) : null;
        JsonElement? tc = tokenizerConfig?.RootElement;
        if (File.Exists(spm)) AddSentencePiece(writer, SentencePieceModel.Load(spm), vocabSize, tc);
        else if (tokenizerJson is not null) AddByteLevelBpe(writer, tokenizerJson.RootElement, vocabSize, json);
        else
            throw new ModelFormatException(FormatErrorKind.Io, "the folder has neither tokenizer.model nor tokenizer.json, so the GGUF would have no vocabulary", filePath: folder);
        AddSpecialVocab(writer, folder, tokenizerJson?.RootElement, tc, config, vocabSize);
    }

    static void AddSentencePiece(GgufWriter writer, SentencePieceModel model, int vocabSize, JsonElement? tokenizerConfig)
    {
        if (vocabSize <= 0) vocabSize = model.Pieces.Length;
        var tokens = new string[vocabSize];
        var scores = new float[vocabSize];
        var types = new int[vocabSize];
        for (int i = 0; i < vocabSize; i++) { tokens[i] = $"[PAD{i}]"; scores[i] = -10000f; types[i] = Unused; }
        for (int i = 0; i < Math.Min(vocabSize, model.Pieces.Length); i++)
        {
            tokens[i] = model.Pieces[i];
            scores[i] = model.Scores[i];
            types[i] = (int)model.Types[i];
        }
        if (tokenizerConfig is { } tc && tc.TryGetProperty("added_tokens_decoder", out var added) && added.ValueKind == JsonValueKind.Object)
            foreach (var entry in added.EnumerateObject())
            {
                if (!int.TryParse(entry.Name, out int id) || id < 0 || id >= vocabSize) continue;
                if (!entry.Value.TryGetProperty("content", out var c) || c.ValueKind != JsonValueKind.String) continue;
                string content = c.GetString()!;
                bool special = entry.Value.TryGetProperty("special", out var s) && s.ValueKind == JsonValueKind.True;
                if (special || LooksSpecial(content)) types[id] = Control;
                else { content = content.Replace('\u2581', ' '); types[id] = UserDefined; }
                scores[id] = -1000f;
                tokens[id] = content;
            }
        writer.AddMetadata(GgufKeys.TokenizerModel, "llama");
        writer.AddMetadata(GgufKeys.TokenizerPre, "default");
        writer.AddMetadata(GgufKeys.Tokens, tokens);
        writer.AddMetadata(GgufKeys.Scores, scores);
        writer.AddMetadata(GgufKeys.TokenTypes, types);
    }

    static void AddByteLevelBpe(GgufWriter writer, JsonElement root, int vocabSize, string path)
    {
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object
            || !model.TryGetProperty("type", out var type) || type.GetString() != "BPE"
            || !model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
            throw Invalid(path, "model", "only byte-level BPE tokenizer.json files (model.type \"BPE\" with a vocab) can be converted");
        var byId = new Dictionary<int, string>();
        foreach (var entry in vocab.EnumerateObject())
            if (entry.Value.TryGetInt32(out int id)) byId[id] = entry.Name;
        var addedById = new Dictionary<int, bool>();
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
            foreach (var token in added.EnumerateArray())
            {
                if (!token.TryGetProperty("id", out var idValue) || !idValue.TryGetInt32(out int id)) continue;
                if (!token.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String) continue;
                byId[id] = content.GetString()!;
                addedById[id] = token.TryGetProperty("special", out var s) && s.ValueKind == JsonValueKind.True;
            }
        if (vocabSize <= 0) vocabSize = byId.Count == 0 ? 0 : byId.Keys.Max() + 1;
        var tokens = new string[vocabSize];
        var types = new int[vocabSize];
        for (int i = 0; i < vocabSize; i++)
        {
            if (!byId.TryGetValue(i, out var token)) { tokens[i] = $"[PAD{i}]"; types[i] = Unused; continue; }
            if (addedById.TryGetValue(i, out bool special))
            {
                if (special || LooksSpecial(token)) types[i] = Control;
                else { token = token.Replace('\u2581', ' '); types[i] = UserDefined; }
            }
            else types[i] = Normal;
            tokens[i] = token;
        }
        writer.AddMetadata(GgufKeys.TokenizerModel, "gpt2");
        writer.AddMetadata(GgufKeys.TokenizerPre, PreTokenizerName(root, path));
        writer.AddMetadata(GgufKeys.Tokens, tokens);
        writer.AddMetadata(GgufKeys.TokenTypes, types);
        writer.AddMetadata(GgufKeys.Merges, Merges(model, path));
    }

    /// <summary>The merges as llama.cpp stores them, "left right"; the newer pair form gets its spaces written as
    /// U+0120 as gguf-py does, so a merge stays two space-separated parts.</summary>
    static string[] Merges(JsonElement model, string path)
    {
        if (!model.TryGetProperty("merges", out var merges) || merges.ValueKind != JsonValueKind.Array)
            throw Invalid(path, "model.merges", "a BPE tokenizer.json needs its merges");
        var result = new string[merges.GetArrayLength()];
        int i = 0;
        foreach (var merge in merges.EnumerateArray())
        {
            if (merge.ValueKind == JsonValueKind.String) result[i++] = merge.GetString()!;
            else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2)
                result[i++] = string.Join(' ', merge.EnumerateArray().Select(p => (p.GetString() ?? "").Replace(' ', '\u0120')));
            else throw Invalid(path, $"model.merges[{i}]", "a merge is neither \"a b\" nor [a, b]");
        }
        return result;
    }

    static string PreTokenizerName(JsonElement root, string path)
    {
        var regexes = new List<string>();
        if (root.TryGetProperty("pre_tokenizer", out var pre)) CollectRegexes(pre, regexes);
        foreach (var regex in regexes)
            if (PreTokenizerByRegex.TryGetValue(regex, out var name)) return name;
        throw Invalid(path, "pre_tokenizer",
            $"the pre-tokenizer is not one llama.cpp is known to name from this converter (known: {string.Join(", ", PreTokenizerByRegex.Values)}); "
            + (regexes.Count == 0 ? "it has no split regex" : $"its split regex is {regexes[0]}"));
    }

    static void CollectRegexes(JsonElement node, List<string> into)
    {
        if (node.ValueKind != JsonValueKind.Object) return;
        if (node.TryGetProperty("pattern", out var pattern) && pattern.ValueKind == JsonValueKind.Object
            && pattern.TryGetProperty("Regex", out var regex) && regex.ValueKind == JsonValueKind.String)
            into.Add(regex.GetString()!);
        if (node.TryGetProperty("pretokenizers", out var list) && list.ValueKind == JsonValueKind.Array)
            foreach (var child in list.EnumerateArray()) CollectRegexes(child, into);
    }

    /// <summary>gguf-py's SpecialVocab: ids of the special tokens named in tokenizer_config.json (found among
    /// tokenizer.json's added tokens), else config.json's *_token_id; add_*_token flags from tokenizer.json's
    /// TemplateProcessing and then tokenizer_config.json; the chat template from tokenizer_config.json or
    /// chat_template.jinja / chat_template.json.</summary>
    static void AddSpecialVocab(GgufWriter writer, string folder, JsonElement? tokenizerJson, JsonElement? tokenizerConfig,
        JsonElement config, int vocabSize)
    {
        var ids = new List<(string Key, uint Id)>();
        var seen = new HashSet<string>();
        var addFlags = new Dictionary<string, bool>();
        var addedTokens = new List<(string Content, int Id)>();
        if (tokenizerJson is { } tj)
        {
            if (tj.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
                foreach (var t in added.EnumerateArray())
                    if (t.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String
                        && t.TryGetProperty("id", out var i) && i.TryGetInt32(out int id))
                        addedTokens.Add((c.GetString()!, id));
            if (tj.TryGetProperty("post_processor", out var post)) ReadTemplateFlags(post, addFlags);
        }
        void Set(string kind, int? id)
        {
            if (id is not { } v || v < 0 || v >= vocabSize || seen.Contains(kind)) return;
            seen.Add(kind);
            ids.Add((SpecialKinds.First(k => k.Kind == kind).Key, (uint)v));
        }
        string? template = null;
        if (tokenizerConfig is { } tc)
        {
            if (tc.TryGetProperty("chat_template", out var t) && t.ValueKind == JsonValueKind.String) template = t.GetString();
            foreach (var (kind, _) in SpecialKinds)
            {
                if (tc.TryGetProperty($"add_{kind}_token", out var flag) && flag.ValueKind is JsonValueKind.True or JsonValueKind.False)
                    addFlags[kind] = flag.GetBoolean();
                if (!tc.TryGetProperty($"{kind}_token", out var entry)) continue;
                string? content = entry.ValueKind == JsonValueKind.String ? entry.GetString()
                    : entry.ValueKind == JsonValueKind.Object && entry.TryGetProperty("content", out var ec) && ec.ValueKind == JsonValueKind.String ? ec.GetString()
                    : null;
                if (content is null) continue;
                foreach (var (text, id) in addedTokens)
                    if (text == content) { Set(kind, id); break; }
            }
        }
        if (template is null)
        {
            string jinja = Path.Combine(folder, "chat_template.jinja"), jsonFile = Path.Combine(folder, "chat_template.json");
            if (File.Exists(jinja)) template = File.ReadAllText(jinja);
            else if (File.Exists(jsonFile))
            {
                using var doc = ReadJson(jsonFile);
                if (doc.RootElement.TryGetProperty("chat_template", out var t) && t.ValueKind == JsonValueKind.String) template = t.GetString();
            }
        }
        foreach (var (kind, _) in SpecialKinds)
            if (config.TryGetProperty($"{kind}_token_id", out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int id))
                Set(kind, id);
        foreach (var (key, id) in ids) writer.AddMetadata(key, id);
        foreach (var (kind, value) in addFlags) writer.AddMetadata($"tokenizer.ggml.add_{kind}_token", value);
        if (template is not null) writer.AddMetadata(GgufKeys.ChatTemplate, template);
    }

    /// <summary>A TemplateProcessing post-processor that puts a special token before (after) the single sequence means
    /// the tokenizer adds BOS (EOS), as SpecialVocab concludes.</summary>
    static void ReadTemplateFlags(JsonElement post, Dictionary<string, bool> flags)
    {
        if (post.ValueKind != JsonValueKind.Object || !post.TryGetProperty("type", out var type)) return;
        if (type.GetString() == "Sequence" && post.TryGetProperty("processors", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var child in list.EnumerateArray()) ReadTemplateFlags(child, flags);
            return;
        }
        if (type.GetString() != "TemplateProcessing" || !post.TryGetProperty("single", out var single)
            || single.ValueKind != JsonValueKind.Array || single.GetArrayLength() == 0) return;
        var items = single.EnumerateArray().ToArray();
        flags["bos"] = items[0].TryGetProperty("SpecialToken", out _);
        flags["eos"] = items.Length > 1 && items[^1].TryGetProperty("SpecialToken", out _);
    }

    /// <summary>convert_hf_to_gguf.py's does_token_look_special: added tokens some models forget to mark special.</summary>
    static bool LooksSpecial(string token) =>
        token is "<pad>" or "<mask>" or "<2mass>" or "[@BOS@]"
        || (token.StartsWith("<|", StringComparison.Ordinal) && token.EndsWith("|>", StringComparison.Ordinal))
        || (token.StartsWith("<\uFF5C", StringComparison.Ordinal) && token.EndsWith("\uFF5C>", StringComparison.Ordinal))
        || (token.StartsWith("<unused", StringComparison.Ordinal) && token.EndsWith('>'));

    internal static JsonDocument ReadJson(string path)
    {
        try { return JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (JsonException e) { throw new ModelFormatException(FormatErrorKind.InvalidConfig, $"not valid JSON: {e.Message}", filePath: path, inner: e); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(FormatErrorKind.Io, e.Message, filePath: path, inner: e);
        }
    }

    static ModelFormatException Invalid(string path, string field, string message) =>
        new(FormatErrorKind.InvalidConfig, message, field: field, filePath: path);
}
