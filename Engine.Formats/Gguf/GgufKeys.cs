namespace Engine.Formats.Gguf;

/// <summary>Metadata keys this code base reads, spelled once, as llama.cpp's gguf-py names them
/// (gguf/constants.py). Architecture-scoped keys ("llama.block_count") are built with <see cref="Arch"/>.</summary>
public static class GgufKeys
{
    /// <summary>Alignment of the tensor data in bytes (uint32, a power of two; 32 when absent).</summary>
    public const string Alignment = "general.alignment";
    /// <summary>The model architecture ("llama", "qwen2", "qwen3moe"); the prefix of the architecture-scoped keys.</summary>
    public const string Architecture = "general.architecture";
    /// <summary>A human-readable model name.</summary>
    public const string Name = "general.name";
    /// <summary>llama.cpp's enum of the predominant weight type (llama_ftype).</summary>
    public const string FileType = "general.file_type";
    /// <summary>Version of the quantization formats the file was written with.</summary>
    public const string QuantizationVersion = "general.quantization_version";
    /// <summary>The tokenizer family: "llama" (SentencePiece), "gpt2" (byte-level BPE), ...</summary>
    public const string TokenizerModel = "tokenizer.ggml.model";
    /// <summary>The pre-tokenizer (the regex that splits text before BPE) by llama.cpp's name: "qwen2", "llama-bpe", ...</summary>
    public const string TokenizerPre = "tokenizer.ggml.pre";
    /// <summary>The vocabulary: array of strings, indexed by token id.</summary>
    public const string Tokens = "tokenizer.ggml.tokens";
    /// <summary>Per-token scores (array of float32): SentencePiece merge priorities.</summary>
    public const string Scores = "tokenizer.ggml.scores";
    /// <summary>Per-token types (array of int32): normal, unknown, control, user-defined, unused, byte.</summary>
    public const string TokenTypes = "tokenizer.ggml.token_type";
    /// <summary>BPE merges, in priority order (array of "left right" strings).</summary>
    public const string Merges = "tokenizer.ggml.merges";
    /// <summary>Beginning-of-sequence token id.</summary>
    public const string BosId = "tokenizer.ggml.bos_token_id";
    /// <summary>End-of-sequence token id.</summary>
    public const string EosId = "tokenizer.ggml.eos_token_id";
    /// <summary>End-of-turn token id (chat models).</summary>
    public const string EotId = "tokenizer.ggml.eot_token_id";
    /// <summary>End-of-message token id (chat models with tool calls).</summary>
    public const string EomId = "tokenizer.ggml.eom_token_id";
    /// <summary>Unknown-token id.</summary>
    public const string UnkId = "tokenizer.ggml.unknown_token_id";
    /// <summary>Padding token id.</summary>
    public const string PadId = "tokenizer.ggml.padding_token_id";
    /// <summary>Whether to prepend the BOS token when encoding (bool).</summary>
    public const string AddBos = "tokenizer.ggml.add_bos_token";
    /// <summary>Whether to append the EOS token when encoding (bool).</summary>
    public const string AddEos = "tokenizer.ggml.add_eos_token";
    /// <summary>Whether SentencePiece prepends a space to the text (bool).</summary>
    public const string AddSpacePrefix = "tokenizer.ggml.add_space_prefix";
    /// <summary>The chat template (Jinja), as in the model's tokenizer_config.json.</summary>
    public const string ChatTemplate = "tokenizer.chat_template";

    /// <summary>An architecture-scoped key such as "llama.block_count".</summary>
    /// <param name="architecture">The value of <see cref="Architecture"/>, e.g. "llama".</param>
    /// <param name="suffix">The key's name under the architecture, e.g. "block_count".</param>
    public static string Arch(string architecture, string suffix) => architecture + "." + suffix;
}
