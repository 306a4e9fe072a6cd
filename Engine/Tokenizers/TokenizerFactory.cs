using Engine.Formats.Gguf;

namespace Engine.Tokenizers;

/// <summary>Creates tokenizers from a GGUF's metadata or a Hugging Face tokenizer.json. Bad tokenizer data throws
/// <see cref="Engine.Formats.ModelFormatException"/> (InvalidConfig, naming the key); unsupported model or
/// pre-tokenizer types say which are supported.</summary>
internal static class TokenizerFactory
{
    /// <summary>tokenizer.ggml.model "llama" (SentencePiece with scores and byte fallback) or "gpt2" (byte-level BPE,
    /// the pre-tokenizer chosen by tokenizer.ggml.pre).</summary>
    public static ITokenizer FromGguf(IReadOnlyDictionary<string, GgufValue> metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        return GgufVocabLoader.Load(metadata);
    }

    /// <summary>A byte-level BPE tokenizer.json (Llama 3, Qwen2/2.5/3, GPT-2 family); tokenizer_config.json beside it,
    /// when present, gives BOS/EOS/PAD and add_bos_token.</summary>
    public static ITokenizer FromTokenizerJson(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        try { return TokenizerJsonLoader.Load(path); }
        catch (Engine.Formats.ModelFormatException e) { throw e.WithFile(path); }
    }

    /// <summary>The GGUF pre-tokenizer names a "gpt2" vocabulary may use.</summary>
    public static IReadOnlyCollection<string> SupportedGgufPreTokenizers => BpePreTokenizerSpec.SupportedNames;
}
