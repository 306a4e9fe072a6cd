namespace Engine.Formats.Gguf;

/// <summary>Metadata keys this code base reads, spelled once.</summary>
public static class GgufKeys
{
    public const string Alignment = "general.alignment";
    public const string Architecture = "general.architecture";
    public const string Name = "general.name";
    public const string FileType = "general.file_type";
    public const string QuantizationVersion = "general.quantization_version";
    public const string TokenizerModel = "tokenizer.ggml.model";
    public const string TokenizerPre = "tokenizer.ggml.pre";
    public const string Tokens = "tokenizer.ggml.tokens";
    public const string Scores = "tokenizer.ggml.scores";
    public const string TokenTypes = "tokenizer.ggml.token_type";
    public const string Merges = "tokenizer.ggml.merges";
    public const string BosId = "tokenizer.ggml.bos_token_id";
    public const string EosId = "tokenizer.ggml.eos_token_id";
    public const string EotId = "tokenizer.ggml.eot_token_id";
    public const string EomId = "tokenizer.ggml.eom_token_id";
    public const string UnkId = "tokenizer.ggml.unknown_token_id";
    public const string PadId = "tokenizer.ggml.padding_token_id";
    public const string AddBos = "tokenizer.ggml.add_bos_token";
    public const string AddEos = "tokenizer.ggml.add_eos_token";
    public const string AddSpacePrefix = "tokenizer.ggml.add_space_prefix";
    public const string ChatTemplate = "tokenizer.chat_template";

    /// <summary>An architecture-scoped key such as "llama.block_count".</summary>
    public static string Arch(string architecture, string suffix) => architecture + "." + suffix;
}
