using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Engine.Backends;
using Engine.Models;
using Engine.Chat;
using Engine.Sampling;
using Engine.Text;

namespace Engine;

/// <summary>
/// One conversation with a model: a KV cache for <see cref="ContextLength"/> tokens and the tokens already in it.
/// Each generation continues where the cache ends; <see cref="ChatAsync"/> re-renders the whole conversation and feeds
/// only what the cache does not already hold, so a long chat costs only its new tokens. One generation runs at a time
/// per session; several sessions of one model take turns step by step. Dispose it to return its cache memory.
/// </summary>
public sealed class Session : IDisposable
{
    readonly Model _model;
    readonly KvCache _cache;
    readonly List<int> _history = [];
    readonly float[] _logits;
    readonly float[] _scratch; // exp(logits - max), for the log-probabilities
    // A token the stream yielded but the model has not read yet (the last of a generation, or one cancelled before its
    // step): the next GenerateAsync feeds it first, so a continuation sees everything it was shown.
    int? _pending;
    int _running; // 1 while a generation runs (Interlocked)
    int _disposed;

    internal Session(Model model, int contextLength)
    {
        _model = model;
        _cache = model.Network.CreateCache(contextLength);
        _logits = new float[model.Info.VocabularySize];
        _scratch = new float[model.Info.VocabularySize];
    }

    /// <summary>The model this session runs.</summary>
    public Model Model => _model;
    /// <summary>Tokens the session holds at most (prompt and generated text together).</summary>
    public int ContextLength => _cache.ContextLength;
    /// <summary>A copy of the tokens in the KV cache, in order. The last token a generation yields is read by the model at
    /// the start of the next <see cref="GenerateAsync(IReadOnlyList{int}, GenerateOptions?, CancellationToken)"/>, so it is
    /// not here yet.</summary>
    public IReadOnlyList<int> Tokens => [.. _history];
    /// <summary>Bytes of KV cache this session holds.</summary>
    internal long CacheBytes => _cache.Bytes;

    /// <summary>Forgets the conversation: the next prompt starts at position 0.</summary>
    public void Reset()
    {
        ThrowIfDisposedOrRunning();
        _history.Clear();
        _pending = null;
    }

    /// <summary>Continues the session with <paramref name="prompt"/>: the token the last generation ended on (if any) is
    /// fed first, then the text. BOS is added before the first prompt when the vocabulary asks for it; special-token text
    /// such as "&lt;|im_end|&gt;" is read as those tokens, as llama.cpp's command line does (tokenize text from users with
    /// <see cref="Model.Tokenize"/> and pass the ids to keep it plain). An empty prompt continues where the last
    /// generation stopped.</summary>
    /// <param name="prompt">The text to continue.</param>
    /// <param name="options">Sampling and stopping; null for llama.cpp's defaults, no token limit.</param>
    /// <param name="cancellationToken">Stops the generation before its next decode step (or prompt slice); the session
    /// stays usable and <see cref="Tokens"/> says what the model has read.</param>
    /// <returns>The generated tokens as they come; the last one carries the finish reason and timings.</returns>
    /// <exception cref="InvalidSamplingOptionsException">An option is out of range; the message names it (thrown here).</exception>
    /// <exception cref="ContextOverflowException">The prompt does not fit in what is left of the context (thrown when
    /// the stream starts).</exception>
    /// <exception cref="ObjectDisposedException">The session (or its model) was disposed.</exception>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters",
        Justification = "The overloads ship together and differ in their first parameter's type (text or tokens), so no call is ambiguous.")]
    public IAsyncEnumerable<GeneratedToken> GenerateAsync(string prompt, GenerateOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        return Run(Prepare(new Continuation(prompt, null), options, []), cancellationToken);
    }

    /// <summary>Continues the session with the given token ids (after the token the last generation ended on, if any).</summary>
    /// <param name="prompt">Token ids, each within the vocabulary; empty continues where the last generation stopped.</param>
    /// <param name="options">Sampling and stopping; null for llama.cpp's defaults, no token limit.</param>
    /// <param name="cancellationToken">Stops the generation before its next decode step (or prompt slice); the session stays usable.</param>
    /// <returns>The generated tokens as they come; the last one carries the finish reason and timings.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A token id is outside the vocabulary (thrown here).</exception>
    /// <exception cref="InvalidSamplingOptionsException">An option is out of range; the message names it (thrown here).</exception>
    /// <exception cref="ContextOverflowException">The prompt does not fit in what is left of the context (thrown when the stream starts).</exception>
    /// <exception cref="ObjectDisposedException">The session (or its model) was disposed.</exception>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters",
        Justification = "The overloads ship together and differ in their first parameter's type (text or tokens), so no call is ambiguous.")]
    public IAsyncEnumerable<GeneratedToken> GenerateAsync(IReadOnlyList<int> prompt, GenerateOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var tokens = prompt.ToArray();
        int vocab = _model.Info.VocabularySize;
        foreach (var id in tokens)
            if ((uint)id >= (uint)vocab) throw new ArgumentOutOfRangeException(nameof(prompt), $"token id {id} is outside the vocabulary of {vocab}");
        return Run(Prepare(new Continuation(null, tokens), options, []), cancellationToken);
    }

    /// <summary>Replies to a conversation with the model's chat template (<see cref="ModelInfo.ChatFormat"/>). The whole
    /// conversation is rendered each time; the part the cache already holds (the earlier turns, when the same session
    /// served them) is not computed again. A thinking model's reasoning comes apart from its answer, and the reply ends at
    /// the template's end-of-turn.</summary>
    /// <param name="messages">The conversation so far, ending with the user's message.</param>
    /// <param name="options">Sampling and stopping; null for llama.cpp's defaults, no token limit.</param>
    /// <param name="cancellationToken">Stops the reply before its next decode step; the session stays usable.</param>
    /// <returns>The reply, token by token; the last update's token carries the finish reason and timings.</returns>
    /// <exception cref="ChatTemplateException">The conversation does not fit the template (an unknown role, a bad order; thrown here).</exception>
    /// <exception cref="InvalidSamplingOptionsException">An option is out of range (thrown here).</exception>
    /// <exception cref="ContextOverflowException">The conversation does not fit in the context (thrown when the stream starts).</exception>
    public IAsyncEnumerable<ChatUpdate> ChatAsync(IEnumerable<ChatTurn> messages, GenerateOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ThrowIfDisposed();
        var template = _model.ChatTemplate;
        var turns = messages.Select((m, i) => m is null ? throw new ArgumentException($"message {i} is null", nameof(messages))
            : new ChatMessage(m.Role, m.Content ?? "")).ToList();
        // The template's markers are special tokens; the messages' own text is read as text, whatever it contains.
        var rendered = template.Render(turns, addGenerationPrompt: true);
        var conversation = _model.Tokenizer.Encode(rendered, addSpecial: true, parseSpecial: true,
            literal: MessageRanges.Find(template, turns, rendered, addGenerationPrompt: true));
        var request = Prepare(new Conversation(conversation), options, template.StopStrings);
        return Chat(request, new ThinkSplitter(template.GenerationPromptOpensThinking), cancellationToken);
    }

    async IAsyncEnumerable<ChatUpdate> Chat(Request request, ThinkSplitter splitter, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var token in Run(request, cancellationToken).ConfigureAwait(false))
        {
            bool wasThinking = splitter.InThinking;
            var chunk = splitter.Push(token.Text);
            bool reasoning = !token.IsEndOfGeneration && (wasThinking || splitter.InThinking);
            if (token.FinishReason is not null)
            {
                var rest = splitter.Flush();
                chunk = new ThinkChunk(chunk.Thinking + rest.Thinking, chunk.Answer + rest.Answer);
            }
            yield return new ChatUpdate(chunk.Thinking, chunk.Answer, token, reasoning);
        }
    }

    /// <summary>What to feed: text or tokens after what the session holds, or a whole conversation of which the cached
    /// prefix is kept. Resolved against the cache when the stream starts, not when it is created.</summary>
    abstract record Input;
    sealed record Continuation(string? Text, int[]? Tokens) : Input;
    sealed record Conversation(int[] Tokens) : Input;

    /// <summary>A generation whose options are checked.</summary>
    sealed record Request(Input Input, GenerateOptions Options, SamplerOptions Sampling, IReadOnlyList<string> TemplateStops);

    Request Prepare(Input input, GenerateOptions? options, IReadOnlyList<string> templateStops)
    {
        ThrowIfDisposed();
        options ??= new GenerateOptions();
        var sampling = options.ToSampler(_model.Info.VocabularySize);
        _ = new StopStrings(options.StopSequences); // the caller's stops are checked now, not mid-stream
        return new Request(input, options, sampling, templateStops);
    }

    async IAsyncEnumerable<GeneratedToken> Run(Request request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _running, 1) == 1)
            throw new InvalidOperationException("a generation is already running on this session: finish or cancel it first, or use another session");
        try
        {
            ThrowIfDisposed();
            cancellationToken.ThrowIfCancellationRequested();
            var tokenizer = _model.Tokenizer;
            var (shared, prompt) = Resolve(request.Input, tokenizer);
            if (shared + prompt.Length > ContextLength)
                throw new ContextOverflowException(ContextLength, shared, prompt.Length);
            var options = request.Options;
            var sampler = new Sampler(request.Sampling, _logits.Length);
            var decoder = new Utf8StreamDecoder();
            var stops = new StopStrings(options.StopSequences, request.TemplateStops);
            int limit = options.MaxTokens ?? int.MaxValue;
            int generated = 0;

            // The prompt goes in slices of the model's batch, one turn each: a long prompt can be cancelled between
            // slices, and other sessions get their turns in between.
            var watch = Stopwatch.StartNew();
            _history.RemoveRange(shared, _history.Count - shared);
            _pending = null;
            int batch = _model.Network.MaxBatch;
            for (int done = 0; done < prompt.Length; done += batch)
            {
                cancellationToken.ThrowIfCancellationRequested();
                ThrowIfDisposed();
                var slice = prompt.AsMemory(done, Math.Min(batch, prompt.Length - done));
                int position = _history.Count;
                await _model.RunPassAsync(network => network.Forward(slice.Span, position, _cache, _logits), cancellationToken).ConfigureAwait(false);
                _history.AddRange(slice.Span);
            }
            var promptTime = watch.Elapsed;
            watch.Restart();
            GenerationTimings Timings() => new(prompt.Length, promptTime, generated, watch.Elapsed, shared);

            if (limit == 0)
            {
                yield return new GeneratedToken { Id = -1, Text = "", LogProbability = 0, FinishReason = FinishReason.MaxTokens, Timings = Timings() };
                yield break;
            }
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var recent = CollectionsMarshal.AsSpan(_history);
                int next = sampler.Sample(_logits, recent[Math.Max(0, recent.Length - request.Sampling.PenaltyLastN)..]);
                float logProbability = LogProbability(next, out float max, out float logSum);
                var alternatives = options.TopLogProbabilities > 0 ? TopAlternatives(options.TopLogProbabilities, max, logSum) : [];

                if (!options.IgnoreEndOfGeneration && tokenizer.IsEndOfGeneration(next))
                {
                    yield return new GeneratedToken
                    {
                        Id = next, Text = stops.Push(decoder.Flush()).Emit + stops.Flush(), LogProbability = logProbability,
                        TopAlternatives = alternatives, IsEndOfGeneration = true, FinishReason = FinishReason.EndOfGeneration, Timings = Timings(),
                    };
                    yield break;
                }
                generated++;
                var piece = stops.Push(decoder.Decode(tokenizer.TokenBytes(next)));
                FinishReason? finish = piece.Stopped ? FinishReason.StopSequence
                    : generated >= limit ? FinishReason.MaxTokens
                    : _history.Count >= ContextLength ? FinishReason.ContextFull
                    : null;
                string text = piece.Emit;
                if (finish is not null and not FinishReason.StopSequence) text += stops.Push(decoder.Flush()).Emit + stops.Flush();
                _pending = next; // shown to the caller: read by the model in the next step, or first thing next time
                yield return new GeneratedToken
                {
                    Id = next, Text = text, LogProbability = logProbability, TopAlternatives = alternatives,
                    FinishReason = finish, Timings = finish is null ? null : Timings(),
                };
                if (finish is not null) yield break;

                cancellationToken.ThrowIfCancellationRequested();
                ThrowIfDisposed();
                int position = _history.Count;
                await _model.RunPassAsync(network => network.Forward([next], position, _cache, _logits), cancellationToken).ConfigureAwait(false);
                _history.Add(next);
                _pending = null;
            }
        }
        finally { Volatile.Write(ref _running, 0); }
    }

    /// <summary>Where the prompt starts in the cache and what to feed, decided when the stream starts.</summary>
    (int Shared, int[] Prompt) Resolve(Input input, Tokenizers.ITokenizer tokenizer)
    {
        switch (input)
        {
            case Conversation conversation:
            {
                // Keep what the cache shares with the conversation; at least one token must be fed to get logits.
                var tokens = conversation.Tokens;
                int shared = 0;
                while (shared < tokens.Length && shared < _history.Count && tokens[shared] == _history[shared]) shared++;
                if (shared == tokens.Length) shared--;
                shared = Math.Max(shared, 0);
                return (shared, tokens[shared..]);
            }
            case Continuation continuation:
            {
                int start = _history.Count;
                var fresh = continuation.Tokens
                    ?? tokenizer.Encode(continuation.Text!, addSpecial: start == 0 && _pending is null, parseSpecial: true);
                int[] prompt = _pending is int pending ? [pending, .. fresh] : fresh;
                if (prompt.Length == 0)
                    throw new ArgumentException("the prompt is empty and there is nothing to continue: give some text or at least one token", "prompt");
                return (start, prompt);
            }
            default: throw new InvalidOperationException(input.GetType().Name);
        }
    }

    /// <summary>log softmax(logits)[token], and the max and log-sum-exp it used (for the alternatives).</summary>
    float LogProbability(int token, out float max, out float logSum)
    {
        max = TensorPrimitives.Max(_logits);
        TensorPrimitives.Subtract(_logits, max, _scratch);
        TensorPrimitives.Exp(_scratch, _scratch);
        logSum = MathF.Log(TensorPrimitives.Sum(_scratch));
        return _logits[token] - max - logSum;
    }

    TokenAlternative[] TopAlternatives(int count, float max, float logSum)
    {
        // A small insertion-sorted list: count is at most 20, so one pass over the vocabulary is the whole cost.
        count = Math.Min(count, _logits.Length);
        var ids = new int[count];
        var values = new float[count];
        int filled = 0;
        for (int id = 0; id < _logits.Length; id++)
        {
            float v = _logits[id];
            if (filled == count && !(v > values[count - 1])) continue;
            int at = filled < count ? filled++ : count - 1;
            while (at > 0 && v > values[at - 1]) { values[at] = values[at - 1]; ids[at] = ids[at - 1]; at--; }
            values[at] = v; ids[at] = id;
        }
        var result = new TokenAlternative[filled];
        for (int i = 0; i < filled; i++) result[i] = new TokenAlternative(ids[i], _model.Tokenizer.PieceText(ids[i]), values[i] - max - logSum);
        return result;
    }

    void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) == 1, this);

    void ThrowIfDisposedOrRunning()
    {
        ThrowIfDisposed();
        if (Volatile.Read(ref _running) == 1) throw new InvalidOperationException("a generation is running on this session: finish or cancel it first");
    }

    /// <summary>Returns the session's KV cache memory (to the device it lives on), between forward passes. A generation
    /// still running on another thread ends with an <see cref="ObjectDisposedException"/> at its next step.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _model.Forget(this);
        _model.Release(_cache);
    }
}
