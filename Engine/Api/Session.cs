using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Engine.Batching;
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
    // The session's place in the model's paged KV cache: its tokens (the last one a generation yielded is read by the
    // model first thing in the next generation, so a continuation sees everything it was shown) and its blocks.
    readonly KvSequence _sequence;
    int _running; // 1 while a generation runs (Interlocked)
    int _disposed;

    internal Session(Model model, int contextLength)
    {
        _model = model;
        _sequence = new KvSequence(contextLength);
    }

    /// <summary>The model this session runs.</summary>
    public Model Model => _model;
    /// <summary>This session's sequence id: what <see cref="HookContext.Sequence"/> says for its rows.</summary>
    public long Id => _sequence.Id;

    /// <summary>Registers a research hook that fires for this session's rows only (prompt and decode steps), at the points
    /// `points` picks (see <see cref="Model.AddHook"/>). Dispose the result to remove it.</summary>
    /// <param name="points">Hook points: llama.cpp names with optional layer and <c>*</c> wildcards, or TransformerLens names.</param>
    /// <param name="hook">Called with each intermediate; may change the values in place.</param>
    /// <returns>The registration; disposing it removes the hook.</returns>
    /// <exception cref="ArgumentException">The pattern picks no hook point.</exception>
    public IDisposable AddHook(string points, ForwardHook hook)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return _model.Network.Hooks.Add(points, hook, _sequence.Id);
    }

    /// <summary>Tokens the session holds at most (prompt and generated text together).</summary>
    public int ContextLength => _sequence.ContextLength;
    /// <summary>A copy of the tokens in the KV cache, in order. The last token a generation yields is read by the model at
    /// the start of the next <see cref="GenerateAsync(IReadOnlyList{int}, GenerateOptions?, CancellationToken)"/>, so it is
    /// not here yet.</summary>
    public IReadOnlyList<int> Tokens => _model.Scheduler.ShownTokensOf(_sequence);

    /// <summary>Tests: every logits row this session's generations sample from, with its position.</summary>
    internal Action<int, float[]>? LogitsTap { get; set; }

    /// <summary>Forgets the conversation: the next prompt starts at position 0, and the session's KV blocks go back to
    /// the model (its full blocks stay in the prefix cache).</summary>
    public void Reset()
    {
        ThrowIfDisposedOrRunning();
        _model.Scheduler.Reset(_sequence);
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
        options ??= new GenerateOptions();
        var (template, turns, tools, rendered) = _model.RenderChat(messages, options);
        string Render(IReadOnlyList<ChatMessage> conversation) => template.Render(conversation, addGenerationPrompt: true, tools);
        // The template's markers are special tokens; the messages' own text is read as text, whatever it contains.
        var conversation = _model.Tokenizer.Encode(rendered, addSpecial: true, parseSpecial: true,
            literal: MessageRanges.Find(Render, turns, rendered));
        var calls = tools.Count > 0 ? _model.ToolCallFormat : null;
        // A required call is enforced by a grammar of the family's call format over the tools' parameter schemas.
        string? callGrammar = null;
        if (calls is not null && options.ToolChoice.RequiresCall)
        {
            var callable = options.ToolChoice.FunctionName is { } only ? tools.Where(t => t.Name == only).ToList() : tools;
            try { callGrammar = calls.CallGrammar(callable, template.GenerationPromptOpensThinking); }
            catch (GrammarException e) { throw new GrammarException(e.Message, nameof(GenerateOptions.Tools)); }
        }
        var request = Prepare(new Conversation(conversation), options, template.StopStrings, calls, callGrammar);
        return Chat(request, new ThinkSplitter(template.GenerationPromptOpensThinking), calls, cancellationToken);
    }

    async IAsyncEnumerable<ChatUpdate> Chat(Request request, ThinkSplitter splitter, Chat.Tools.ToolCallFormat? callFormat,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var calls = callFormat is null ? null : new Chat.Tools.ToolCallStream(callFormat);
        await foreach (var token in Run(request, cancellationToken).ConfigureAwait(false))
        {
            bool wasThinking = splitter.InThinking;
            var chunk = splitter.Push(token.Text);
            bool reasoning = !token.IsEndOfGeneration && (wasThinking || splitter.InThinking);
            IReadOnlyList<ToolCall> toolCalls = [];
            if (token.FinishReason is not null)
            {
                var rest = splitter.Flush();
                chunk = new ThinkChunk(chunk.Thinking + rest.Thinking, chunk.Answer + rest.Answer);
            }
            if (calls is not null)
            {
                var answer = calls.Push(chunk.Answer);
                if (token.FinishReason is not null)
                {
                    var (held, parsed) = calls.Finish();
                    answer += held;
                    toolCalls = [.. parsed.Select(c => new ToolCall(c.Id ?? callFormat!.NewCallId(), c.Name, c.Arguments))];
                }
                chunk = chunk with { Answer = answer };
            }
            yield return new ChatUpdate(chunk.Thinking, chunk.Answer, token, reasoning) { ToolCalls = toolCalls };
        }
    }

    /// <summary>What to feed: text or tokens after what the session holds, or a whole conversation of which the cached
    /// prefix is kept. Resolved against the cache when the stream starts, not when it is created.</summary>
    abstract record Input;
    sealed record Continuation(string? Text, int[]? Tokens) : Input;
    sealed record Conversation(int[] Tokens) : Input;

    /// <summary>A generation whose options are checked.</summary>
    sealed record Request(Input Input, GenerateOptions Options, SamplerOptions Sampling, IReadOnlyList<string> TemplateStops, IReadOnlySet<int> ShownSpecialTokens);

    Request Prepare(Input input, GenerateOptions? options, IReadOnlyList<string> templateStops, Chat.Tools.ToolCallFormat? toolCalls = null,
        string? callGrammar = null)
    {
        ThrowIfDisposed();
        options ??= new GenerateOptions();
        var sampling = options.ToSampler(_model.Info.VocabularySize);
        if (_model.Constraint(options, callGrammar) is { } constraint) sampling = sampling with { Grammar = constraint };
        _ = new StopStrings(options.StopSequences); // the caller's stops are checked now, not mid-stream
        // The special tokens a family writes around its calls reach the parser as text (llama.cpp's preserved tokens).
        var shown = toolCalls is null ? System.Collections.Frozen.FrozenSet<int>.Empty : _model.ToolCallMarkerTokens;
        return new Request(input, options, sampling, templateStops, shown);
    }

    async IAsyncEnumerable<GeneratedToken> Run(Request request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _running, 1) == 1)
            throw new InvalidOperationException("a generation is already running on this session: finish or cancel it first, or use another session");
        try
        {
            ThrowIfDisposed();
            // On the scheduler's thread (an observer) the stream would wait for the very step it is inside.
            Model.ThrowIfReentered();
            cancellationToken.ThrowIfCancellationRequested();
            var scheduler = _model.Scheduler;
            var tokenizer = _model.Tokenizer;
            var job = new GenerationJob(_sequence, request.Options, request.Sampling, request.TemplateStops, _model.Info.VocabularySize)
            {
                LogitsTap = LogitsTap,
                ShownSpecialTokens = request.ShownSpecialTokens,
            };
            // Resolved against the sequence when the stream starts (not when it was created), in the scheduler's lock.
            scheduler.Start(job, tokens => Resolve(request.Input, tokens, tokenizer));
            bool ended = false;
            try
            {
                var reader = job.Output.Reader;
                while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
                    // Tokens the scheduler ran ahead with are not handed out after a cancel.
                    while (!cancellationToken.IsCancellationRequested && reader.TryRead(out var token))
                    {
                        job.CountRead();
                        scheduler.Wake();
                        yield return token;
                    }
                ended = true;
            }
            finally
            {
                // Stopped early (cancelled, or the caller left the loop): the scheduler rolls the sequence back to what
                // was read before this returns, so the session is consistent for the next call.
                if (!ended)
                {
                    scheduler.Cancel(job);
                    await job.Done.Task.ConfigureAwait(false);
                }
            }
            if (job.Failure is { } failure && failure is not OperationCanceledException)
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
        finally { Volatile.Write(ref _running, 0); }
    }

    /// <summary>What to keep of the sequence's tokens and what to add, decided when the stream starts.</summary>
    static (int Keep, int[] Append) Resolve(Input input, List<int> held, Tokenizers.ITokenizer tokenizer)
    {
        switch (input)
        {
            case Conversation conversation:
            {
                // Keep what the session shares with the conversation; at least one token must be fed to get logits.
                var tokens = conversation.Tokens;
                int shared = 0;
                while (shared < tokens.Length && shared < held.Count && tokens[shared] == held[shared]) shared++;
                if (shared == tokens.Length) shared--;
                shared = Math.Max(shared, 0);
                return (shared, tokens[shared..]);
            }
            case Continuation continuation:
            {
                var fresh = continuation.Tokens ?? tokenizer.Encode(continuation.Text!, addSpecial: held.Count == 0, parseSpecial: true);
                return (held.Count, fresh);
            }
            default: throw new InvalidOperationException(input.GetType().Name);
        }
    }

    void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) == 1, this);

    void ThrowIfDisposedOrRunning()
    {
        ThrowIfDisposed();
        if (Volatile.Read(ref _running) == 1) throw new InvalidOperationException("a generation is running on this session: finish or cancel it first");
    }

    /// <summary>Returns the session's KV blocks to the model (its full blocks stay in the prefix cache), between forward
    /// passes. A generation still running on another thread ends with an <see cref="ObjectDisposedException"/> at its next
    /// step.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _model.Forget(this);
        _model.Scheduler.Close(_sequence);
    }
}
