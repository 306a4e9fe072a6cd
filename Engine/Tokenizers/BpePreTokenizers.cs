namespace Engine.Tokenizers;

/// <summary>What a GGUF "tokenizer.ggml.pre" name means for a byte-level BPE vocabulary: the split patterns and the
/// flags llama.cpp sets with it (llama-vocab.cpp). Patterns are llama.cpp's, written for .NET; the ones llama.cpp
/// spells with (?:'[sS]|...) stand for the case-insensitive contractions of the original tokenizer.json.</summary>
internal sealed record BpePreTokenizerSpec(string Name, string[] Patterns, bool IgnoreMerges = false, bool AddBos = false,
    bool CleanSpaces = true, bool ClearBos = false)
{
    const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    const string Contractions = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
    const string Llama3 = Contractions + @"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const string Qwen2 = Contractions + @"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    static readonly string[] DefaultPatterns = [@"[\p{P}\$\+<=>\^~\|]+", Gpt2, @"\p{N}+", "[0-9][0-9][0-9]"];
    static readonly string[] DeepseekLlmPatterns =
    [
        "[\r\n]",
        // Cased letters (the original lists them literally; escaped here so no editor can normalize them).
        "\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293\u0295-\u02AF\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C\u038E-\u03A1\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5\u13A0-\u13F5\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57\u1F59\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC\u1FD0-\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107\u210A-\u2113\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139\u213C-\u213F\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2\u2CF3\uA640-\uA66D\uA680-\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00-\uFB06\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A]+",
        "\\s?[!-/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+",
        @"\s+$",
        "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+",
        @"\p{N}+",
    ];
    static readonly string[] DeepseekCoderPatterns = ["[\r\n]", @"\s?\p{L}+", @"\s?\p{P}+", "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+", @"\p{N}"];
    static readonly string[] FalconPatterns = [@"[\p{P}\$\+<=>\^~\|`]+", Gpt2, "[0-9][0-9][0-9]"];
    static readonly string[] StarcoderPatterns = [@"\p{N}", Gpt2];

    static readonly Dictionary<string, BpePreTokenizerSpec> Known = Build();

    static Dictionary<string, BpePreTokenizerSpec> Build()
    {
        var d = new Dictionary<string, BpePreTokenizerSpec>(StringComparer.Ordinal);
        void Add(BpePreTokenizerSpec spec, params string[] names) { foreach (var n in names) d[n] = spec with { Name = n }; }
        Add(new("default", DefaultPatterns), "default");
        Add(new("llama3", [Llama3], IgnoreMerges: true, AddBos: true), "llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral");
        Add(new("dbrx", [Llama3]), "dbrx", "smaug-bpe");
        Add(new("chatglm-bpe", [Llama3], ClearBos: true), "chatglm-bpe", "glm4");
        Add(new("deepseek-llm", DeepseekLlmPatterns, CleanSpaces: false), "deepseek-llm");
        Add(new("deepseek-coder", DeepseekCoderPatterns, CleanSpaces: false), "deepseek-coder");
        Add(new("falcon", FalconPatterns), "falcon");
        Add(new("gpt-2", [Gpt2]), "gpt-2", "gpt2", "mpt", "phi-2", "olmo", "jais", "exaone4", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de");
        Add(new("starcoder", StarcoderPatterns), "starcoder", "refact", "codeshell", "exaone", "minerva-7b");
        Add(new("command-r", StarcoderPatterns, CleanSpaces: false), "command-r", "smollm");
        Add(new("qwen2", [Qwen2], CleanSpaces: false), "qwen2", "deepseek-r1-qwen", "megrez");
        Add(new("stablelm2", [Qwen2]), "stablelm2");
        return d;
    }

    public static IReadOnlyCollection<string> SupportedNames => Known.Keys;

    /// <summary>The spec for a pre-tokenizer name (null or empty means "default", as in llama.cpp), or null when unknown.</summary>
    public static BpePreTokenizerSpec? Find(string? name) => Known.GetValueOrDefault(string.IsNullOrEmpty(name) ? "default" : name);

    /// <summary>The Llama 3 pattern, for recognizing it in a tokenizer.json.</summary>
    internal static bool IsLlama3Pattern(string pattern) =>
        pattern == Llama3 || pattern == @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
}
