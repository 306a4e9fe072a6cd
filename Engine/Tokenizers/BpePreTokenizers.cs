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
        @"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ]+",
        @"\s?[!-/:-~！-／：-～‘-‟　-。]+",
        @"\s+$",
        "[一-龥ࠀ-一가-퟿]+",
        @"\p{N}+",
    ];
    static readonly string[] DeepseekCoderPatterns = ["[\r\n]", @"\s?\p{L}+", @"\s?\p{P}+", "[一-龥ࠀ-一가-퟿]+", @"\p{N}"];
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
