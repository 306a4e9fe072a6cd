using System.Text.Json;
using Engine.Formats;

namespace Engine.Tokenizers;

/// <summary>Builds a tokenizer from a Hugging Face tokenizer.json holding a byte-level BPE model (Llama 3, Qwen2/2.5/3,
/// GPT-2 family): model.vocab and model.merges feed the BPE, added_tokens become control (special) or user-defined
/// tokens, and the pre-tokenizer's Split patterns are used as written. BOS/EOS/PAD and add_bos_token come from a
/// tokenizer_config.json beside it when there is one.</summary>
internal static class TokenizerJsonLoader
{
    /// <summary>A vocabulary this large is not a text tokenizer (and bounds what we allocate from the file's ids).</summary>
    const int MaxVocab = 4 << 20;

    public static Tokenizer Load(string path)
    {
        using var doc = Parse(path);
        var root = doc.RootElement;
        var model = Object(root, "model");
        var type = model.TryGetProperty("type", out var t) ? t.GetString() : null;
        if (type != "BPE") throw Invalid("model.type", $"tokenizer model '{type}' is not supported", "BPE", type);
        if (model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True)
            throw Invalid("model.byte_fallback", "byte-fallback BPE (SentencePiece-style tokenizer.json) is not supported", "false", "true");

        // Vocabulary: model.vocab plus added_tokens; ids must be unique and dense enough to index an array.
        var byId = new Dictionary<int, string>();
        var textToId = new Dictionary<string, int>(StringComparer.Ordinal);
        var bpeVocab = new List<KeyValuePair<string, int>>();
        foreach (var p in Object(model, "vocab").EnumerateObject())
        {
            int id = Id(p.Value, "model.vocab");
            AddToken(p.Name, id, "model.vocab");
            bpeVocab.Add(new(p.Name, id));
        }
        var added = new Dictionary<int, (bool Special, bool LStrip, bool RStrip)>();
        if (root.TryGetProperty("added_tokens", out var addedTokens) && addedTokens.ValueKind == JsonValueKind.Array)
        {
            foreach (var a in addedTokens.EnumerateArray())
            {
                int id = Id(a.GetProperty("id"), "added_tokens");
                var content = a.GetProperty("content").GetString() ?? throw Invalid("added_tokens", "an added token has no content");
                if (!byId.TryGetValue(id, out var existing)) AddToken(content, id, "added_tokens");
                else if (existing != content) throw Invalid("added_tokens", $"added token id {id} is '{content}' but the vocabulary has '{existing}'");
                added[id] = (Bool(a, "special"), Bool(a, "lstrip"), Bool(a, "rstrip"));
            }
        }
        int n = byId.Keys.Max() + 1;

        var texts = new string[n];
        var attrs = new TokenAttr[n];
        for (int i = 0; i < n; i++)
        {
            if (byId.TryGetValue(i, out var text)) { texts[i] = text; attrs[i] = TokenAttr.Normal; }
            else
            {
                // A hole in the id space: a placeholder that no text can produce (llama.cpp's converter does the same).
                texts[i] = $"[PAD{i}]";
                attrs[i] = TokenAttr.Unused;
                if (!textToId.TryAdd(texts[i], i)) throw Invalid("model.vocab", $"token '{texts[i]}' collides with a placeholder");
            }
        }
        foreach (var (id, a) in added)
        {
            attrs[id] = a.Special ? TokenAttr.Control : TokenAttr.UserDefined;
            if (a.LStrip) attrs[id] |= TokenAttr.LStrip;
            if (a.RStrip) attrs[id] |= TokenAttr.RStrip;
        }

        var merges = ReadMerges(model, textToId);
        var patterns = ReadPatterns(root);
        bool llama3 = patterns.Length == 1 && BpePreTokenizerSpec.IsLlama3Pattern(patterns[0]);
        bool ignoreMerges = model.TryGetProperty("ignore_merges", out var im) && im.ValueKind == JsonValueKind.True;

        using var config = ParseConfigBeside(path);
        var cfg = config?.RootElement;
        int? Special(string key)
        {
            if (cfg is not JsonElement c || !c.TryGetProperty(key, out var v)) return null;
            var s = v.ValueKind switch
            {
                JsonValueKind.String => v.GetString(),
                JsonValueKind.Object when v.TryGetProperty("content", out var content) => content.GetString(),
                _ => null,
            };
            if (s is null) return null;
            return textToId.TryGetValue(s, out var id) ? id : throw Invalid("tokenizer_config.json:" + key, $"'{s}' is not a token");
        }
        bool? ConfigBool(string key) =>
            cfg is JsonElement c && c.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False
                ? v.GetBoolean() : null;

        string? unkText = model.TryGetProperty("unk_token", out var u) && u.ValueKind == JsonValueKind.String ? u.GetString() : null;
        var vocab = new Vocab
        {
            Texts = texts,
            Scores = new float[n],
            Attrs = attrs,
            TextToId = textToId,
            Bos = Special("bos_token"),
            Eos = Special("eos_token"),
            Pad = Special("pad_token"),
            Unk = unkText is not null && textToId.TryGetValue(unkText, out var unk) ? unk : null,
            // llama.cpp turns BOS on for the Llama 3 pre-tokenizer; otherwise the config decides (HF default: off here).
            AddBos = ConfigBool("add_bos_token") ?? llama3,
            AddEos = ConfigBool("add_eos_token") ?? false,
            CleanSpaces = ConfigBool("clean_up_tokenization_spaces") ?? true,
        };
        if (vocab.AddBos && vocab.Bos is null) vocab.AddBos = false;
        if (vocab.AddEos && vocab.Eos is null) vocab.AddEos = false;
        vocab.Finish();

        var bpe = new ByteLevelBpeEncoder(bpeVocab, merges, new RegexPreTokenizer(patterns), textToId, ignoreMerges);
        return Tokenizer.Bpe(vocab, bpe);

        void AddToken(string text, int id, string where)
        {
            if (!byId.TryAdd(id, text)) throw Invalid(where, $"token id {id} is used twice");
            if (!textToId.TryAdd(text, id)) throw Invalid(where, $"token '{text}' appears twice");
        }
    }

    static List<string> ReadMerges(JsonElement model, Dictionary<string, int> textToId)
    {
        var merges = new List<string>();
        if (!model.TryGetProperty("merges", out var arr) || arr.ValueKind != JsonValueKind.Array)
            throw Invalid("model.merges", "missing merges");
        foreach (var m in arr.EnumerateArray())
        {
            string left, right;
            if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2)
            {
                left = m[0].GetString() ?? ""; right = m[1].GetString() ?? "";
            }
            else if (m.ValueKind == JsonValueKind.String && m.GetString() is { } s && s.IndexOf(' ', 1) is int sep and > 0)
            {
                left = s[..sep]; right = s[(sep + 1)..];
            }
            else throw Invalid("model.merges", $"merge {merges.Count} is not a pair of tokens");
            if (!textToId.ContainsKey(left) || !textToId.ContainsKey(right) || !textToId.ContainsKey(left + right))
                throw Invalid("model.merges", $"merge {merges.Count} '{left} {right}' names a token that is not in the vocabulary");
            merges.Add(left + " " + right);
        }
        return merges;
    }

    /// <summary>The Split patterns of the pre-tokenizer, in order. ByteLevel with use_regex stands for the GPT-2 pattern.</summary>
    static string[] ReadPatterns(JsonElement root)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object)
            throw Invalid("pre_tokenizer", "a byte-level BPE needs a pre-tokenizer");
        var steps = pre.GetProperty("type").GetString() == "Sequence" ? pre.GetProperty("pretokenizers").EnumerateArray().ToList() : [pre];
        var patterns = new List<string>();
        bool byteLevel = false;
        foreach (var step in steps)
        {
            var kind = step.GetProperty("type").GetString();
            if (kind == "Split")
            {
                var behavior = step.TryGetProperty("behavior", out var b) ? b.GetString() : "Isolated";
                bool invert = step.TryGetProperty("invert", out var inv) && inv.ValueKind == JsonValueKind.True;
                if (behavior != "Isolated" || invert)
                    throw Invalid("pre_tokenizer", $"Split behavior '{behavior}' (invert {invert}) is not supported", "Isolated");
                var pattern = step.GetProperty("pattern");
                patterns.Add(pattern.TryGetProperty("Regex", out var rx) ? rx.GetString()!
                    : System.Text.RegularExpressions.Regex.Escape(pattern.GetProperty("String").GetString()!));
            }
            else if (kind == "ByteLevel")
            {
                byteLevel = true;
                if (step.TryGetProperty("add_prefix_space", out var aps) && aps.ValueKind == JsonValueKind.True)
                    throw Invalid("pre_tokenizer", "ByteLevel add_prefix_space is not supported");
                if (!step.TryGetProperty("use_regex", out var ur) || ur.ValueKind != JsonValueKind.False)
                    patterns.Add(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+");
            }
            else if (kind != "Digits" || patterns.Count == 0)
                throw Invalid("pre_tokenizer", $"pre-tokenizer step '{kind}' is not supported", "Split, ByteLevel");
            else
                patterns.Add(step.TryGetProperty("individual_digits", out var d) && d.ValueKind == JsonValueKind.True ? @"\p{N}" : @"\p{N}+");
        }
        if (!byteLevel) throw Invalid("pre_tokenizer", "only byte-level BPE tokenizer.json files are supported", "ByteLevel");
        return patterns.ToArray();
    }

    static JsonDocument Parse(string path)
    {
        try { return JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = 64 }); }
        catch (JsonException e) { throw new ModelFormatException(FormatErrorKind.InvalidConfig, "tokenizer.json is not valid JSON: " + e.Message, filePath: path, inner: e); }
        catch (IOException e) { throw new ModelFormatException(FormatErrorKind.Io, "cannot read tokenizer.json: " + e.Message, filePath: path, inner: e); }
    }

    static JsonDocument? ParseConfigBeside(string path)
    {
        var config = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".", "tokenizer_config.json");
        return File.Exists(config) ? Parse(config) : null;
    }

    static JsonElement Object(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Object ? v : throw Invalid(name, $"'{name}' is missing or not an object");

    static int Id(JsonElement e, string where) =>
        e.TryGetInt32(out var id) && id >= 0 && id < MaxVocab ? id : throw Invalid(where, $"token id {e} is not in 0..{MaxVocab - 1}");

    static bool Bool(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.True;

    static ModelFormatException Invalid(string field, string message, string? expected = null, string? actual = null) =>
        new(FormatErrorKind.InvalidConfig, message, field: field, expected: expected, actual: actual);
}
