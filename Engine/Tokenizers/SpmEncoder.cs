using System.Text;

namespace Engine.Tokenizers;

/// <summary>llama.cpp's SentencePiece-BPE algorithm (llm_tokenizer_spm): start from single code points, repeatedly merge
/// the adjacent pair whose concatenation is the vocabulary token with the highest score (ties: leftmost), then emit each
/// piece as its token, or as byte tokens &lt;0xHH&gt; when the piece is not in the vocabulary (byte fallback).
/// Hand-written because Microsoft.ML.Tokenizers' SentencePiece tokenizer can only be built from a serialized
/// SentencePiece model (protobuf), while a GGUF gives token/score arrays.</summary>
internal sealed class SpmEncoder
{
    readonly Vocab _vocab;
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    readonly int[] _byteTokens = new int[256];

    public SpmEncoder(Vocab vocab)
    {
        _vocab = vocab;
        _lookup = vocab.TextToId.GetAlternateLookup<ReadOnlySpan<char>>();
        for (int b = 0; b < 256; b++)
        {
            // "<0xHH>" first; some vocabularies have the plain character instead (llama_vocab::byte_to_token).
            if (vocab.TextToId.TryGetValue($"<0x{b:X2}>", out var id)) _byteTokens[b] = id;
            else if (b < 0x80 && vocab.TextToId.TryGetValue(((char)b).ToString(), out id)) _byteTokens[b] = id;
            else _byteTokens[b] = vocab.Unk ?? -1;
        }
    }

    struct Symbol { public int Start, Length, Prev, Next; }

    /// <summary>Tokenizes already-escaped text (spaces replaced by "▁").</summary>
    public void Encode(string text, List<int> output)
    {
        if (text.Length == 0) return;
        var symbols = new List<Symbol>(text.Length);
        for (int pos = 0; pos < text.Length;)
        {
            int len = char.IsHighSurrogate(text[pos]) && pos + 1 < text.Length && char.IsLowSurrogate(text[pos + 1]) ? 2 : 1;
            symbols.Add(new Symbol { Start = pos, Length = len, Prev = symbols.Count - 1, Next = pos + len == text.Length ? -1 : symbols.Count + 1 });
            pos += len;
        }

        var queue = new PriorityQueue<(int Left, int Right, int Size), (float Score, int Left)>(HighScoreThenLeftmost.Instance);
        void TryAdd(int left, int right)
        {
            if (left < 0 || right < 0) return;
            var s = symbols[left];
            int size = s.Length + symbols[right].Length;
            if (!_lookup.TryGetValue(text.AsSpan(s.Start, size), out var id)) return;
            queue.Enqueue((left, right, size), (_vocab.Scores[id], left));
        }

        for (int i = 1; i < symbols.Count; i++) TryAdd(i - 1, i);

        var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(symbols);
        while (queue.TryDequeue(out var bigram, out _))
        {
            ref var left = ref span[bigram.Left];
            ref var right = ref span[bigram.Right];
            // Skip pairs made stale by an earlier merge (a side merged away, or grown since the pair was queued).
            if (left.Length == 0 || right.Length == 0 || left.Length + right.Length != bigram.Size) continue;
            left.Length += right.Length;
            right.Length = 0;
            left.Next = right.Next;
            if (right.Next >= 0) span[right.Next].Prev = bigram.Left;
            TryAdd(left.Prev, bigram.Left);
            TryAdd(bigram.Left, left.Next);
        }

        Span<byte> utf8 = stackalloc byte[8];
        for (int i = 0; i != -1; i = span[i].Next)
        {
            var piece = text.AsSpan(span[i].Start, span[i].Length);
            if (_lookup.TryGetValue(piece, out var id)) { output.Add(id); continue; }
            // Every merged piece is a token, so only a single code point can miss: emit its UTF-8 bytes.
            int n = Encoding.UTF8.GetBytes(piece, utf8);
            for (int b = 0; b < n; b++)
                if (_byteTokens[utf8[b]] >= 0) output.Add(_byteTokens[utf8[b]]);
        }
    }

    sealed class HighScoreThenLeftmost : IComparer<(float Score, int Left)>
    {
        public static readonly HighScoreThenLeftmost Instance = new();
        public int Compare((float Score, int Left) a, (float Score, int Left) b) =>
            a.Score != b.Score ? b.Score.CompareTo(a.Score) : a.Left.CompareTo(b.Left);
    }
}
