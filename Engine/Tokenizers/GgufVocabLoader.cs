using Engine.Formats;
using Engine.Formats.Gguf;

namespace Engine.Tokenizers;

/// <summary>Builds a tokenizer from GGUF tokenizer.ggml.* metadata, validating it first (checklist M5-M7): arrays of
/// equal length, special ids inside the vocabulary (defaults that fall outside are cleared, as llama.cpp does; explicit
/// ones are rejected), byte tokens exactly &lt;0xHH&gt;, merges naming only known tokens, no duplicate token texts.</summary>
internal static class GgufVocabLoader
{
    static readonly string[] SupportedModels = ["llama", "gpt2"];

    public static Tokenizer Load(IReadOnlyDictionary<string, GgufValue> md)
    {
        var model = md.GetString(GgufKeys.TokenizerModel);
        if (model is not ("llama" or "gpt2"))
            throw Invalid(GgufKeys.TokenizerModel, $"tokenizer model '{model}' is not supported",
                string.Join(", ", SupportedModels), model);
        bool spm = model == "llama";

        // A copy: empty tokens get renamed below, and the metadata must stay as read.
        var texts = (string[])(md.GetArrayOrNull<string>(GgufKeys.Tokens) ?? throw GgufMetadataAccess.Missing(GgufKeys.Tokens)).Clone();
        if (texts.Length == 0) throw Invalid(GgufKeys.Tokens, "the vocabulary is empty", ">= 1 token", "0");
        int n = texts.Length;

        var scores = ReadScores(md, n);
        var types = md.GetArrayOrNull<int>(GgufKeys.TokenTypes);
        if (types is not null && types.Length != n)
            throw Invalid(GgufKeys.TokenTypes, "token type array length differs from the token count", n.ToString(), types.Length.ToString());

        var attrs = new TokenAttr[n];
        var textToId = new Dictionary<string, int>(n, StringComparer.Ordinal);
        for (int i = 0; i < n; i++)
        {
            if (string.IsNullOrEmpty(texts[i])) texts[i] = $"[EMPTY_{i}]"; // llama.cpp renames empty tokens the same way
            if (!textToId.TryAdd(texts[i], i))
                throw Invalid(GgufKeys.Tokens, $"token text '{texts[i]}' appears twice (ids {textToId[texts[i]]} and {i})");
            attrs[i] = types is null ? TokenAttr.Normal : GgufTokenType.ToAttr(types[i]);
            if ((attrs[i] & TokenAttr.Byte) != 0 && !IsByteToken(texts[i]))
                throw Invalid(GgufKeys.Tokens, $"byte token {i} is '{texts[i]}', not <0xHH>", "<0xHH>", texts[i]);
        }

        var preName = md.GetStringOrNull(GgufKeys.TokenizerPre);
        BpePreTokenizerSpec? pre = null;
        if (!spm)
        {
            pre = BpePreTokenizerSpec.Find(preName) ?? throw Invalid(GgufKeys.TokenizerPre,
                $"pre-tokenizer '{preName}' is not supported", string.Join(", ", BpePreTokenizerSpec.SupportedNames.Order()), preName);
        }

        var vocab = new Vocab
        {
            Texts = texts,
            Scores = scores,
            Attrs = attrs,
            TextToId = textToId,
            // llama.cpp's defaults per model type; BPE vocabularies default BOS/EOS to 11, which most GGUFs override.
            Bos = Default(spm ? 1 : pre!.ClearBos ? null : 11, n),
            Eos = Default(spm ? 2 : 11, n),
            Unk = Default(spm ? 0 : null, n),
            AddBos = spm || pre!.AddBos,
            AddEos = false,
            AddSpacePrefix = spm,
            CleanSpaces = !spm && pre!.CleanSpaces,
        };
        vocab.AddSpacePrefix = md.GetBoolOrNull(GgufKeys.AddSpacePrefix) ?? vocab.AddSpacePrefix;
        vocab.Bos = SpecialId(md, GgufKeys.BosId, n) ?? vocab.Bos;
        vocab.Eos = SpecialId(md, GgufKeys.EosId, n) ?? vocab.Eos;
        vocab.Eot = SpecialId(md, GgufKeys.EotId, n);
        vocab.Eom = SpecialId(md, GgufKeys.EomId, n);
        vocab.Unk = SpecialId(md, GgufKeys.UnkId, n) ?? vocab.Unk;
        vocab.Pad = SpecialId(md, GgufKeys.PadId, n);
        vocab.AddBos = md.GetBoolOrNull(GgufKeys.AddBos) ?? vocab.AddBos;
        vocab.AddEos = md.GetBoolOrNull(GgufKeys.AddEos) ?? vocab.AddEos;
        if (vocab.AddBos && vocab.Bos is null)
            throw Invalid(GgufKeys.AddBos, "add_bos_token is true but there is no BOS token");
        if (vocab.AddEos && vocab.Eos is null)
            throw Invalid(GgufKeys.AddEos, "add_eos_token is true but there is no EOS token");

        var name = (md.GetStringOrNull(GgufKeys.Name) ?? "").ToLowerInvariant();
        vocab.Finish(markPhi3SpecialsRStrip: name.Contains("phi-3") || name.Contains("phi3"));

        if (spm) return Tokenizer.Spm(vocab);

        var merges = md.GetArrayOrNull<string>(GgufKeys.Merges) ?? throw GgufMetadataAccess.Missing(GgufKeys.Merges);
        ValidateMerges(merges, textToId);
        var bpe = new ByteLevelBpeEncoder(textToId, merges, new RegexPreTokenizer(pre!.Patterns), textToId, pre.IgnoreMerges);
        return Tokenizer.Bpe(vocab, bpe);
    }

    static float[] ReadScores(IReadOnlyDictionary<string, GgufValue> md, int n)
    {
        if (!md.TryGetValue(GgufKeys.Scores, out var value)) return new float[n];
        // llama.cpp accepts float32 or int32 scores.
        float[] scores = value.Value switch
        {
            float[] f => f,
            int[] i => Array.ConvertAll(i, x => (float)x),
            _ => throw GgufMetadataAccess.WrongType(GgufKeys.Scores, "array[float32]", value),
        };
        if (scores.Length != n)
            throw Invalid(GgufKeys.Scores, "score array length differs from the token count", n.ToString(), scores.Length.ToString());
        return scores;
    }

    static void ValidateMerges(string[] merges, Dictionary<string, int> textToId)
    {
        for (int i = 0; i < merges.Length; i++)
        {
            var m = merges[i];
            // The separator is the first space after the first character (a token may itself be a lone space).
            int sep = m.Length > 1 ? m.IndexOf(' ', 1) : -1;
            if (sep < 0)
                throw Invalid(GgufKeys.Merges, $"merge {i} '{m}' is not two tokens separated by a space");
            string left = m[..sep], right = m[(sep + 1)..];
            // Both sides and the merged result must be tokens (the BPE engine refuses merges that make unknown tokens).
            if (!textToId.ContainsKey(left) || !textToId.ContainsKey(right) || !textToId.ContainsKey(left + right))
                throw Invalid(GgufKeys.Merges, $"merge {i} '{m}' names a token that is not in the vocabulary");
        }
    }

    static bool IsByteToken(string t) =>
        t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>' && char.IsAsciiHexDigit(t[3]) && char.IsAsciiHexDigit(t[4]);

    static int? Default(int? id, int n) => id is int i && i < n ? i : null;

    static int? SpecialId(IReadOnlyDictionary<string, GgufValue> md, string key, int n)
    {
        var v = md.GetIntegerOrNull(key);
        // -1 (as int32, or 0xFFFFFFFF as uint32) is what converters write for "no such token": treat it as absent.
        if (v is null or -1 or uint.MaxValue) return null;
        if (v < 0 || v >= n)
            throw Invalid(key, $"special token id {v} is outside the vocabulary", $"0..{n - 1}", v.ToString());
        return (int)v;
    }

    static ModelFormatException Invalid(string key, string message, string? expected = null, string? actual = null) =>
        new(FormatErrorKind.InvalidConfig, message, field: key, expected: expected, actual: actual);
}
