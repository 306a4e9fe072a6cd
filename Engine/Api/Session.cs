using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Engine.Backends;
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
    int _running; // 1 while a generation runs (Interlocked)
    bool _disposed;

    internal Session(Model model, int contextLength)
    {
        _model = model;
        _cache = model.Network.CreateCache(contextLength);
        _logits = new float[model.Info.VocabularySize];
    }

    /// <summary>The model this session runs.</summary>
    public Model Model => _model;
    /// <summary>Tokens the session holds at most (prompt and generated text together).</summary>
    public int ContextLength => _cache.ContextLength;
    /// <summary>The tokens in the KV cache, in order. A generated token is in it once the model has read it, so the
    /// last token of a finished generation is not (it is fed with the next prompt).</summary>
    public IReadOnlyList<int> Tokens => _history;
    /// <summary>Bytes of KV cache this session holds.</summary>
    internal long CacheBytes => _disposed ? 0 : _cache.Bytes;

    /// <summary>Forgets the conversation: the next prompt starts at position 0.</summary>
    public void Reset()
    {
        ThrowIfDisposedOrRunning();
        _history.Clear();
    }

    /// <summary>Generates a continuation of <paramref name="prompt"/>, which follows what the session already holds (BOS
    /// is added before the first prompt when the vocabulary asks for it; special-token text such as "&lt;|im_end|&gt;"
    /// is read as those tokens, as llama.cpp's command line does).</summary>
    /// <param name="prompt">The text to continue.</param>
    /// <param name="options">Sampling and stopping; null for llama.cpp's defaults, no token limit.</param>
    /// <param name="cancellationToken">Stops the generation before the next decode step; the session stays usable.</param>
    /// <returns>The generated tokens as they come; the last one carries the finish reason and timings.</returns>
    /// <exception cref="ContextOverflowException">The prompt does not fit in what is left of the context.</exception>
    /// <exception cref="InvalidSamplingOptionsException">An option is out of range; the message names it.</exception>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters",
        Justification = "The overloads ship together and differ in their first parameter's type (text or tokens), so no call is ambiguous.")]
    public IAsyncEnumerable<GeneratedToken> GenerateAsync(string prompt, GenerateOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ThrowIfDisposed();
        var tokens = _model.Tokenizer.Encode(prompt, addSpecial: _history.Count == 0, parseSpecial: true);
        return GenerateAsync(tokens, options, cancellationToken);
    }

    /// <summary>Generates a continuation of the given token ids, fed after what the session already holds.</summary>
    /// <param name="prompt">Token ids, at least one, each within the vocabulary.</param>
    /// <param name="options">Sampling and stopping; null for llama.cpp's defaults, no token limit.</param>
    /// <param name="cancellationToken">Stops the generation before the next decode step; the session stays usable.</param>
    /// <returns>The generated tokens as they come; the last one carries the finish reason and timings.</returns>
    /// <exception cref="ContextOverflowException">The prompt does not fit in what is left of the context.</exception>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters",
        Justification = "The overloads ship together and differ in their first parameter's type (text or tokens), so no call is ambiguous.")]
    public IAsyncEnumerable<GeneratedToken> GenerateAsync(IReadOnlyList<int> prompt, GenerateOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var request = Prepare(prompt.ToArray(), options ?? new GenerateOptions(), []);
        return Run(request, shared: _history.Count, cancellationToken);
    }

    /// <summary>Replies to a conversation with the model's chat template (<see cref="ModelInfo.ChatFormat"/>). The whole
    /// conversation is rendered each time; the part the cache already holds (the earlier turns, when the same session
    /// served them) is not computed again. A thinking model's reasoning comes apart from its answer, and the reply ends at
    /// the template's end-of-turn.</summary>
    /// <param name="messages">The conversation so far, ending with the user's message.</param>
    /// <param name="options">Sampling and stopping; null for llama.cpp's defaults, no token limit.</param>
    /// <param name="cancellationToken">Stops the reply before the next decode step; the session stays usable.</param>
    /// <returns>The reply, token by token; the last update's token carries the finish reason and timings.</returns>
    /// <exception cref="ChatTemplateException">The conversation does not fit the template (an unknown role, a bad order).</exception>
    /// <exception cref="ContextOverflowException">The conversation does not fit in the context.</exception>
    public async IAsyncEnumerable<ChatUpdate> ChatAsync(IEnumerable<ChatTurn> messages, GenerateOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ThrowIfDisposed();
        var template = _model.ChatTemplate;
        var turns = messages.Select((m, i) => m is null ? throw new ArgumentException($"message {i} is null", nameof(messages))
            : new ChatMessage(m.Role, m.Content ?? "")).ToList();
        var conversation = _model.Tokenizer.Encode(template.Render(turns, addGenerationPrompt: true), addSpecial: true, parseSpecial: true);
        options ??= new GenerateOptions();

        // Keep what the cache shares with the conversation; at least one token must be fed to get logits.
        int shared = 0;
        while (shared < conversation.Length && shared < _history.Count && conversation[shared] == _history[shared]) shared++;
        if (shared == conversation.Length) shared--;
        shared = Math.Max(shared, 0);
        var request = Prepare(conversation[shared..], options, template.StopStrings, startAt: shared);

        var splitter = new ThinkSplitter(template.GenerationPromptOpensThinking);
        await foreach (var token in Run(request, shared, cancellationToken).ConfigureAwait(false))
        {
            var chunk = splitter.Push(token.Text);
            if (token.FinishReason is not null)
            {
                var rest = splitter.Flush();
                chunk = new ThinkChunk(chunk.Thinking + rest.Thinking, chunk.Answer + rest.Answer);
            }
            yield return new ChatUpdate(chunk.Thinking, chunk.Answer, token);
        }
    }

    /// <summary>A generation checked in full before anything runs.</summary>
    sealed record Request(int[] Prompt, GenerateOptions Options, SamplerOptions Sampling, IReadOnlyList<string> Stops);

    Request Prepare(int[] prompt, GenerateOptions options, IReadOnlyList<string> templateStops, int? startAt = null)
    {
        ThrowIfDisposed();
        int vocab = _model.Info.VocabularySize;
        if (prompt.Length == 0) throw new ArgumentException("the prompt is empty: give some text or at least one token", nameof(prompt));
        foreach (var id in prompt)
            if ((uint)id >= (uint)vocab) throw new ArgumentOutOfRangeException(nameof(prompt), $"token id {id} is outside the vocabulary of {vocab}");
        int start = startAt ?? _history.Count;
        if (start + prompt.Length > ContextLength)
            throw new ContextOverflowException(ContextLength, start, prompt.Length);
        var sampling = options.ToSampler(vocab);
        var stops = options.StopSequences.Concat(templateStops).ToList();
        _ = new StopStrings(stops); // validates count and lengths now, not mid-stream
        return new Request(prompt, options, sampling, stops);
    }

    async IAsyncEnumerable<GeneratedToken> Run(Request request, int shared, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _running, 1) == 1)
            throw new InvalidOperationException("a generation is already running on this session: finish or cancel it first, or use another session");
        try
        {
            ThrowIfDisposed();
            cancellationToken.ThrowIfCancellationRequested();
            var tokenizer = _model.Tokenizer;
            var options = request.Options;
            var sampler = new Sampler(request.Sampling, _logits.Length);
            var decoder = new Utf8StreamDecoder();
            var stops = new StopStrings(request.Stops);
            int limit = options.MaxTokens ?? int.MaxValue;
            int generated = 0;

            var watch = Stopwatch.StartNew();
            _history.RemoveRange(shared, _history.Count - shared);
            var prompt = request.Prompt;
            await Step(() => _model.Forward(prompt, shared, _cache, _logits), cancellationToken).ConfigureAwait(false);
            _history.AddRange(prompt);
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
                float logProbability = LogProbability(_logits, next, out float max, out float logSum);
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
                yield return new GeneratedToken
                {
                    Id = next, Text = text, LogProbability = logProbability, TopAlternatives = alternatives,
                    FinishReason = finish, Timings = finish is null ? null : Timings(),
                };
                if (finish is not null) yield break;

                cancellationToken.ThrowIfCancellationRequested();
                int position = _history.Count;
                await Step(() => _model.Forward([next], position, _cache, _logits), cancellationToken).ConfigureAwait(false);
                _history.Add(next);
            }
        }
        finally { Volatile.Write(ref _running, 0); }
    }

    /// <summary>Runs one forward pass without blocking a thread that has other work: on a UI or other non-pool thread (or
    /// under a synchronization context) it moves to the thread pool; on a pool thread it runs in place, since moving would
    /// only occupy another pool thread for the same time and cost a thread switch per token (half the speed of a small
    /// model such as stories260K, measured).</summary>
    static ValueTask Step(Action forward, CancellationToken cancellationToken)
    {
        if (SynchronizationContext.Current is null && TaskScheduler.Current == TaskScheduler.Default && Thread.CurrentThread.IsThreadPoolThread)
        {
            forward();
            return ValueTask.CompletedTask;
        }
        return new ValueTask(Task.Run(forward, cancellationToken));
    }

    /// <summary>log softmax(logits)[token], and the max and log-sum-exp it used (for the alternatives).</summary>
    static float LogProbability(float[] logits, int token, out float max, out float logSum)
    {
        max = TensorPrimitives.Max(logits);
        double sum = 0;
        foreach (var l in logits) sum += Math.Exp(l - max);
        logSum = (float)Math.Log(sum);
        return logits[token] - max - logSum;
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

    void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    void ThrowIfDisposedOrRunning()
    {
        ThrowIfDisposed();
        if (Volatile.Read(ref _running) == 1) throw new InvalidOperationException("a generation is running on this session: finish or cancel it first");
    }

    /// <summary>Returns the session's KV cache memory (to the device it lives on). A generation still running stops at its next step.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _model.Forget(this);
        _model.Release(_cache);
    }
}
