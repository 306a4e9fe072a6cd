namespace Engine.Tokenizers;

/// <summary>Text to token ids and back, with llama.cpp's semantics (llama_tokenize / llama_token_to_piece /
/// llama_detokenize), so prompts tokenize to exactly the ids llama.cpp would feed the model.</summary>
internal interface ITokenizer
{
    /// <summary>Tokenizes <paramref name="text"/>. <paramref name="addSpecial"/> adds BOS/EOS as the vocabulary asks
    /// (<see cref="AddBos"/>, <see cref="AddEos"/>); <paramref name="parseSpecial"/> turns control-token text such as
    /// "&lt;|im_start|&gt;" in the input into those tokens (user-defined tokens are always recognized, as in llama.cpp).</summary>
    /// <param name="text">The text.</param>
    /// <param name="addSpecial">Add BOS/EOS as the vocabulary asks.</param>
    /// <param name="parseSpecial">Read control-token text as those tokens.</param>
    /// <param name="literal">Character ranges of <paramref name="text"/> where control-token text stays plain text even
    /// when <paramref name="parseSpecial"/> is on: the messages inside a rendered chat template, so that a user who types
    /// "&lt;|im_end|&gt;" cannot forge a turn. Outside them nothing changes.</param>
    int[] Encode(string text, bool addSpecial, bool parseSpecial, IReadOnlyList<Range>? literal = null);

    /// <summary>The raw bytes a token stands for, for streaming output one token at a time: SentencePiece "▁" becomes a
    /// space, byte tokens &lt;0xHH&gt; their byte, GPT-2 byte-level characters their bytes. A token's bytes may be part of
    /// a UTF-8 character that the next token completes, so callers assemble UTF-8 across tokens.
    /// Control and unknown tokens give no bytes unless <paramref name="special"/> is true (then their text).</summary>
    byte[] TokenBytes(int id, bool special = false);

    /// <summary>Ids back to text, like llama.cpp's detokenize without special tokens: control tokens are skipped, the
    /// leading space SentencePiece adds is removed, and (for vocabularies that ask for it) spaces before punctuation
    /// are cleaned up.</summary>
    string Decode(IEnumerable<int> ids);

    int VocabSize { get; }
    int? Bos { get; }
    int? Eos { get; }
    int? Eot { get; }
    int? Unk { get; }
    int? Pad { get; }
    bool AddBos { get; }
    bool AddEos { get; }

    /// <summary>True for EOS, EOT, EOM and the tokens llama.cpp marks end-of-generation by their text
    /// (&lt;|im_end|&gt;, &lt;|eot_id|&gt;, &lt;|end_of_text|&gt;, &lt;|endoftext|&gt;, ...).</summary>
    bool IsEndOfGeneration(int id);

    /// <summary>A token as text for display (its bytes decoded as UTF-8, special tokens shown as their text).</summary>
    string PieceText(int id);

    /// <summary>The vocabulary as stored (SentencePiece "▁" and GPT-2 byte-level characters left as they are).</summary>
    IReadOnlyList<string> Tokens { get; }
}
