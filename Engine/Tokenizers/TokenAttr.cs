namespace Engine.Tokenizers;

/// <summary>Per-token attributes, as llama.cpp keeps them (flags, because a token can gain CONTROL on top of its type,
/// and LSTRIP/RSTRIP for models whose special tokens swallow neighbouring spaces).</summary>
[Flags]
internal enum TokenAttr
{
    None = 0,
    Undefined = 1 << 0,
    Unknown = 1 << 1,
    Unused = 1 << 2,
    Normal = 1 << 3,
    Control = 1 << 4,
    UserDefined = 1 << 5,
    Byte = 1 << 6,
    Normalized = 1 << 7,
    LStrip = 1 << 8,
    RStrip = 1 << 9,
}

/// <summary>GGUF tokenizer.ggml.token_type values (llama_token_type).</summary>
internal static class GgufTokenType
{
    public const int Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6;

    public static TokenAttr ToAttr(int type) => type switch
    {
        Normal => TokenAttr.Normal,
        Unknown => TokenAttr.Unknown,
        Control => TokenAttr.Control,
        UserDefined => TokenAttr.UserDefined,
        Unused => TokenAttr.Unused,
        Byte => TokenAttr.Byte,
        _ => TokenAttr.Undefined,
    };
}
