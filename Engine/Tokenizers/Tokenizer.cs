using System.Text;

namespace Engine.Tokenizers;

/// <summary>The tokenizer: special-token splitting, BOS/EOS, and either the SentencePiece or the byte-level BPE
/// algorithm for the text between special tokens (llama_vocab::impl::tokenize). Thread-safe once built.</summary>
internal sealed class Tokenizer : ITokenizer
{
    readonly Vocab _vocab;
    readonly SpmEncoder? _spm;
    readonly ByteLevelBpeEncoder? _bpe;
    readonly byte[]?[] _pieces;

    Tokenizer(Vocab vocab, SpmEncoder? spm, ByteLevelBpeEncoder? bpe)
    {
        _vocab = vocab;
        _spm = spm;
        _bpe = bpe;
        _pieces = new byte[]?[vocab.Count];
    }

    public static Tokenizer Spm(Vocab vocab) => new(vocab, new SpmEncoder(vocab), null);
    public static Tokenizer Bpe(Vocab vocab, ByteLevelBpeEncoder bpe) => new(vocab, null, bpe);

    public int VocabSize => _vocab.Count;
    public int? Bos => _vocab.Bos;
    public int? Eos => _vocab.Eos;
    public int? Eot => _vocab.Eot;
    public int? Unk => _vocab.Unk;
    public int? Pad => _vocab.Pad;
    public bool AddBos => _vocab.AddBos;
    public bool AddEos => _vocab.AddEos;
    public IReadOnlyList<string> Tokens => _vocab.Texts;
    /// <summary>"spm" or "bpe".</summary>
    public string Kind => _spm is not null ? "spm" : "bpe";

    public bool IsEndOfGeneration(int id) => _vocab.EndOfGeneration.Contains(id);

    public int[] Encode(string text, bool addSpecial, bool parseSpecial, IReadOnlyList<Range>? literal = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        var output = new List<int>(text.Length / 3 + 2);
        if (addSpecial && _vocab.AddBos && _vocab.Bos is int bos) output.Add(bos);

        bool previousWasSpecial = true; // SentencePiece prefixes a space to the first text run and to runs after specials
        foreach (var fragment in SpecialTokenSplitter.Split(_vocab, text, parseSpecial, literal))
        {
            if (fragment.IsToken)
            {
                output.Add(fragment.Token);
                previousWasSpecial = true;
                continue;
            }
            var run = text.Substring(fragment.Start, fragment.Length);
            if (_spm is not null)
            {
                if (_vocab.AddSpacePrefix && previousWasSpecial) run = " " + run;
                _spm.Encode(run.Replace(' ', '\u2581'), output);
            }
            else
            {
                _bpe!.Encode(run, output);
            }
            previousWasSpecial = false;
        }

        if (addSpecial && _vocab.AddEos && _vocab.Eos is int eos) output.Add(eos);
        return output.ToArray();
    }

    public byte[] TokenBytes(int id, bool special = false)
    {
        CheckId(id);
        var attr = _vocab.Attrs[id];
        if ((attr & (TokenAttr.Control | TokenAttr.Unknown)) != 0)
            return special ? Encoding.UTF8.GetBytes(_vocab.Texts[id]) : [];
        return _pieces[id] ??= Piece(id, attr);
    }

    byte[] Piece(int id, TokenAttr attr)
    {
        var text = _vocab.Texts[id];
        if ((attr & TokenAttr.UserDefined) != 0) return Encoding.UTF8.GetBytes(text);
        if ((attr & TokenAttr.Byte) != 0) return [Convert.ToByte(text.Substring(3, 2), 16)];
        // Unused and undefined tokens render as nothing, like control tokens (llama_token_to_piece).
        if ((attr & TokenAttr.Normal) == 0) return [];
        return _spm is not null ? Encoding.UTF8.GetBytes(text.Replace('\u2581', ' ')) : ByteLevel.Decode(text);
    }

    public string PieceText(int id)
    {
        CheckId(id);
        return Encoding.UTF8.GetString(TokenBytes(id, special: true));
    }

    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var bytes = new List<byte>();
        bool removeSpace = _vocab.AddSpacePrefix; // the space SentencePiece put in front of the text
        bool first = true;
        foreach (var id in ids)
        {
            // As llama.cpp: a leading BOS the vocabulary adds is dropped first, so the space after it is still removed.
            if (first && _vocab.AddBos && id == _vocab.Bos) { first = false; continue; }
            first = false;
            var piece = TokenBytes(id);
            int skip = removeSpace && piece.Length > 0 && piece[0] == (byte)' ' ? 1 : 0;
            removeSpace = false;
            for (int i = skip; i < piece.Length; i++) bytes.Add(piece[i]);
        }
        if (_vocab.CleanSpaces) CleanUpSpaces(bytes);
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>Hugging Face's clean_up_tokenization_spaces as llama.cpp does it: drop the space in " ?", " !", " .",
    /// " ,", around a lone " ' ", and before "'s", "'m", "'re", "'ve".</summary>
    static void CleanUpSpaces(List<byte> t)
    {
        void Pass(Func<List<byte>, int, (bool DropPrevSpace, bool DropNext)> rule)
        {
            if (t.Count == 0) return;
            var result = new List<byte>(t.Count) { t[0] };
            for (int i = 1; i < t.Count; i++)
            {
                var (dropPrev, dropNext) = rule(t, i);
                if (dropPrev) result.RemoveAt(result.Count - 1);
                result.Add(t[i]);
                if (dropNext) i++;
            }
            t.Clear();
            t.AddRange(result);
        }
        Pass((s, i) => (s[i - 1] == ' ' && s[i] is (byte)'?' or (byte)'!' or (byte)'.' or (byte)',', false));
        Pass((s, i) => s[i] == '\'' && i + 1 < s.Count && s[i - 1] == ' ' && s[i + 1] == ' ' ? (true, true) : (false, false));
        Pass((s, i) =>
        {
            if (s[i - 1] != ' ' || s[i] != '\'' || i + 1 >= s.Count) return (false, false);
            byte a = s[i + 1];
            if (a is (byte)'s' or (byte)'m') return (true, false);
            if (i + 2 < s.Count && ((a == 'r' && s[i + 2] == 'e') || (a == 'v' && s[i + 2] == 'e'))) return (true, false);
            return (false, false);
        });
    }

    void CheckId(int id)
    {
        if ((uint)id >= (uint)_vocab.Count)
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the vocabulary (size {_vocab.Count})");
    }
}
