using System.Collections.Concurrent;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace Engine.Tokenizers;

/// <summary>Byte-level BPE (GPT-2 style): split text into words with the vocabulary's pre-tokenizer patterns, then
/// run ranked merges over each word's byte-level characters. The merging is Microsoft.ML.Tokenizers' BpeTokenizer
/// (ByteLevel), fed the vocabulary and merges from the GGUF arrays or the tokenizer.json; the word splitting is ours
/// (see <see cref="RegexPreTokenizer"/>), and so is "ignore_merges" (Llama 3: a word that is itself a token is that
/// token, whatever the merges would make of it), which the library does not offer.</summary>
internal sealed class ByteLevelBpeEncoder
{
    readonly BpeTokenizer _bpe;
    readonly RegexPreTokenizer _preTokenizer;
    readonly Dictionary<string, int> _textToId;
    readonly bool _ignoreMerges;
    readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    const int MaxCacheEntries = 1 << 16;

    public ByteLevelBpeEncoder(IEnumerable<KeyValuePair<string, int>> vocabulary, IEnumerable<string> merges,
        RegexPreTokenizer preTokenizer, Dictionary<string, int> textToId, bool ignoreMerges)
    {
        _bpe = BpeTokenizer.Create(new BpeOptions(vocabulary)
        {
            Merges = merges,
            ByteLevel = true,
            // We hand the library one word at a time, so its own pre-tokenizer must keep the word whole.
            PreTokenizer = WholeText.Instance,
        });
        _preTokenizer = preTokenizer;
        _textToId = textToId;
        _ignoreMerges = ignoreMerges;
    }

    public void Encode(string text, List<int> output)
    {
        foreach (var word in _preTokenizer.Split(text))
        {
            if (_cache.TryGetValue(word, out var ids)) { output.AddRange(ids); continue; }
            ids = EncodeWord(word);
            if (_cache.Count >= MaxCacheEntries) _cache.Clear();
            _cache[word] = ids;
            output.AddRange(ids);
        }
    }

    int[] EncodeWord(string word)
    {
        if (_ignoreMerges && _textToId.TryGetValue(ByteLevel.Encode(Encoding.UTF8.GetBytes(word)), out var whole))
            return [whole];
        return _bpe.EncodeToIds(word).ToArray();
    }

    /// <summary>A pre-tokenizer that returns the text as a single piece.</summary>
    sealed class WholeText : PreTokenizer
    {
        public static readonly WholeText Instance = new();
        public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) =>
            string.IsNullOrEmpty(text) ? [] : [(0, text.Length)];
        public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) =>
            text.IsEmpty ? [] : [(0, text.Length)];
    }
}
