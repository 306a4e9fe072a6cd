namespace Engine.Tokenizers;

/// <summary>The token table shared by both algorithms: texts, scores, attributes, special ids and flags. Built by the
/// GGUF and tokenizer.json loaders, already validated; <see cref="Finish"/> derives what llama.cpp derives at load
/// (auto-detected EOT/EOM, the end-of-generation set, the list of special tokens to split the input on).</summary>
internal sealed class Vocab
{
    public required string[] Texts { get; init; }
    public required float[] Scores { get; init; }
    public required TokenAttr[] Attrs { get; init; }
    public required Dictionary<string, int> TextToId { get; init; }

    public int? Bos { get; set; }
    public int? Eos { get; set; }
    public int? Eot { get; set; }
    public int? Eom { get; set; }
    public int? Unk { get; set; }
    public int? Pad { get; set; }
    public bool AddBos { get; set; }
    public bool AddEos { get; set; }
    /// <summary>SentencePiece: prefix a space to the text (and after each special token).</summary>
    public bool AddSpacePrefix { get; set; }
    /// <summary>Decode removes spaces before ?!., and some contractions (HF clean_up_tokenization_spaces).</summary>
    public bool CleanSpaces { get; set; }

    public int Count => Texts.Length;

    /// <summary>Special tokens (control, user-defined, unknown), longest text first: the order llama.cpp splits on.</summary>
    public int[] SpecialTokens { get; private set; } = [];
    public HashSet<int> EndOfGeneration { get; } = [];

    public bool Has(TokenAttr attr, int id) => (Attrs[id] & attr) != 0;

    // Texts llama.cpp treats as end-of-turn, end-of-message or fill-in-the-middle stop tokens (llama-vocab.cpp load()).
    static readonly string[] EotTexts =
        ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
         "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>"];
    static readonly string[] EogTexts =
        ["<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
         "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
         "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>"];
    static readonly string[] FimStopTexts =
        ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
         "<REPO>", "<reponame>", "<|file_sep|>"];

    /// <summary>Derives EOT/EOM, the end-of-generation set and the special-token list. Call once, after the ids are set.</summary>
    public void Finish(bool markPhi3SpecialsRStrip = false)
    {
        // The first text of the list wins where several match (llama.cpp walks a hash map, so its choice is arbitrary;
        // this makes Llama 3's EOT <|eot_id|> rather than <|end_of_text|>).
        if (Eot is null) Eot = FirstWithText(EotTexts);
        if (Eom is null) Eom = FirstWithText(["<|eom_id|>"]);
        foreach (var id in new[] { Eot, Eom }) if (id is int t) Attrs[t] |= TokenAttr.Control;

        foreach (var text in FimStopTexts.Concat(EogTexts))
            if (TextToId.TryGetValue(text, out var id)) { EndOfGeneration.Add(id); Attrs[id] |= TokenAttr.Control; }
        foreach (var id in new[] { Eos, Eot, Eom }) if (id is int t) EndOfGeneration.Add(t);

        // o200k_harmony / solar-open: "<|end|>" ends a message there, not the generation.
        bool Has(string t) => TextToId.TryGetValue(t, out var i) && EndOfGeneration.Contains(i);
        if (((Has("<|return|>") && Has("<|call|>")) || (Has("<|calls|>") && Has("<|flush|>"))) && TextToId.TryGetValue("<|end|>", out var end))
        {
            EndOfGeneration.Remove(end);
            Attrs[end] = TokenAttr.UserDefined;
        }
        // gemma4: "</s>" is not a stop token when "<|tool_response>" exists.
        if (Has("<|tool_response>") && TextToId.TryGetValue("</s>", out var s) && Eos != s)
        {
            EndOfGeneration.Remove(s);
            Attrs[s] = TokenAttr.Normal;
        }

        var specials = new List<int>();
        for (int id = 0; id < Count; id++)
            if ((Attrs[id] & (TokenAttr.Control | TokenAttr.UserDefined | TokenAttr.Unknown)) != 0) specials.Add(id);
        // Stable sort by length, longest first, so that e.g. "<|im_start|>" is found before a shorter token inside it.
        SpecialTokens = specials.OrderByDescending(id => Texts[id].Length).ToArray();

        if (markPhi3SpecialsRStrip)
        {
            // llama.cpp: Phi-3's special tokens eat the whitespace after them, except <unk>, <s>, <|endoftext|>.
            foreach (var id in SpecialTokens) Attrs[id] |= TokenAttr.RStrip;
            if (TextToId.TryGetValue("</s>", out var eosId)) Attrs[eosId] |= TokenAttr.RStrip;
            foreach (var t in new[] { "<unk>", "<s>", "<|endoftext|>" })
                if (TextToId.TryGetValue(t, out var i)) Attrs[i] &= ~TokenAttr.RStrip;
        }
    }

    int? FirstWithText(string[] texts)
    {
        foreach (var t in texts)
            if (TextToId.TryGetValue(t, out var id)) return id;
        return null;
    }
}
