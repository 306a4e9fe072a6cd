using System.Diagnostics;
using Engine.Backends;
using Engine.Models;
using Engine.Sampling;
using Engine.Text;
using Engine.Tokenizers;

namespace Engine.Generation;

/// <summary>One conversation with a model: a KV cache preallocated for the whole context, the tokens already in
/// it, and the loop that turns a prompt into streamed text. Successive calls continue where the cache ends
/// (the chat command feeds each turn's new tokens only).</summary>
public sealed class Session
{
    readonly Llama _model;
    readonly ITokenizer _tokenizer;
    readonly KvCache _cache;
    readonly List<int> _history = [];
    readonly float[] _logits;

    public int ContextLength => _cache.ContextLength;
    /// <summary>Tokens already in the KV cache.</summary>
    public int Position => _history.Count;
    public IReadOnlyList<int> History => _history;

    public Session(Llama model, ITokenizer tokenizer, int contextLength)
    {
        if (contextLength <= 0) throw new ArgumentOutOfRangeException(nameof(contextLength), "the context must hold at least one token");
        _model = model;
        _tokenizer = tokenizer;
        _cache = model.CreateCache(contextLength);
        _logits = new float[model.Config.VocabSize];
    }

    /// <summary>Forgets the conversation (the cache is overwritten from position 0 on).</summary>
    public void Reset() => _history.Clear();

    /// <summary>Continues from a whole conversation: the tokens it shares with what is already in the cache are
    /// kept, only the rest is fed (as llama.cpp's server reuses its prompt cache). The chat command re-renders the
    /// conversation each turn and calls this.</summary>
    public GenerationResult GenerateFrom(int[] conversation, GenerationOptions options, Action<string>? onText = null, CancellationToken cancel = default)
    {
        int shared = 0;
        while (shared < conversation.Length && shared < _history.Count && conversation[shared] == _history[shared]) shared++;
        if (shared == conversation.Length) shared--; // at least one token must be fed to get logits
        if (shared < 0) shared = 0;
        _history.RemoveRange(shared, _history.Count - shared);
        return Generate(conversation[shared..], options, onText, cancel);
    }

    /// <summary>Feeds the prompt as one batch after what is already in the cache, then samples one token at a
    /// time, streaming text through onText.</summary>
    public GenerationResult Generate(int[] prompt, GenerationOptions options, Action<string>? onText = null, CancellationToken cancel = default)
    {
        if (prompt.Length == 0) throw new ArgumentException("the prompt is empty: give some text or at least one token", nameof(prompt));
        int vocab = _model.Config.VocabSize;
        foreach (var id in prompt)
            if ((uint)id >= (uint)vocab) throw new ArgumentException($"token id {id} is outside the vocabulary of {vocab}", nameof(prompt));
        int available = ContextLength - Position;
        if (prompt.Length > available)
            throw new ContextOverflowException(ContextLength, Position, prompt.Length);
        if (options.MaxTokens is int max && max > 0 && prompt.Length + max > available)
            throw new ArgumentException($"the prompt has {prompt.Length} tokens and {max} more were requested, but the context has room for {available} " +
                                        $"(context {ContextLength}, {Position} already used): lower -n or raise --ctx");

        var sampler = new Sampler(options.Sampling, vocab);
        var decoder = new Utf8StreamDecoder();
        var stops = new StopStrings(options.StopStrings);
        var generated = new List<int>();
        var text = new System.Text.StringBuilder();
        void Emit(string s) { if (s.Length == 0) return; text.Append(s); onText?.Invoke(s); }

        var watch = Stopwatch.StartNew();
        _model.Forward(prompt, Position, _cache, _logits);
        _history.AddRange(prompt);
        var promptTime = watch.Elapsed;
        watch.Restart();

        StopReason reason = StopReason.MaxTokens;
        int limit = options.MaxTokens is int m && m > 0 ? m : int.MaxValue;
        while (true)
        {
            if (cancel.IsCancellationRequested) { reason = StopReason.Cancelled; break; }
            if (generated.Count >= limit) { reason = StopReason.MaxTokens; break; }
            var recent = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_history);
            int next = sampler.Sample(_logits, recent[Math.Max(0, recent.Length - options.Sampling.PenaltyLastN)..]);
            if (!options.IgnoreEndOfGeneration && _tokenizer.IsEndOfGeneration(next)) { reason = StopReason.EndOfGeneration; break; }
            generated.Add(next);
            var piece = stops.Push(decoder.Decode(_tokenizer.TokenBytes(next)));
            Emit(piece.Emit);
            if (piece.Stopped) { reason = StopReason.StopString; break; }
            if (generated.Count >= limit) { reason = StopReason.MaxTokens; break; }
            if (Position >= ContextLength) { reason = StopReason.ContextFull; break; }
            _model.Forward([next], Position, _cache, _logits);
            _history.Add(next);
        }
        if (reason != StopReason.StopString) Emit(stops.Push(decoder.Flush()).Emit + stops.Flush());
        return new GenerationResult(prompt, generated.ToArray(), text.ToString(), reason, promptTime, watch.Elapsed);
    }
}
