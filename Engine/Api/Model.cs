using System.Numerics.Tensors;
using Engine.Backends;
using Engine.Batching;
using Engine.Chat;
using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Models;
using Engine.Tokenizers;
using Microsoft.Extensions.AI;

namespace Engine;

/// <summary>
/// A language model loaded from a GGUF file or a Hugging Face folder, ready to run: the entry point of the library.
/// <code>
/// using var model = Model.Load("qwen2.5-1.5b-instruct-q4_k_m.gguf");
/// using var session = model.CreateSession();
/// await foreach (var token in session.GenerateAsync("Once upon a time"))
///     Console.Write(token.Text);
/// </code>
/// A model is shared by its sessions, the chat client and the embedding generator; every forward pass takes the
/// model's turn, so they may be used from several threads (they run one step at a time). Disposing the model disposes
/// its sessions and returns all of its memory, CPU and GPU.
/// </summary>
public sealed partial class Model : IDisposable
{
    readonly LoadedModel _loaded;
    // One thread runs every forward pass: the sessions' steps batched together, and the passes that need the model to
    // themselves (embeddings) in between.
    readonly Scheduler _scheduler;
    readonly HashSet<Session> _sessions = [];
    bool _disposed;

    internal Llama Network => _loaded.Model;
    internal Scheduler Scheduler => _scheduler;
    /// <summary>The tokenizer, read on first use: a Hugging Face folder without tokenizer.json still runs from token ids,
    /// and asking it for text says what is missing.</summary>
    internal ITokenizer Tokenizer => _loaded.Tokenizer;
    internal IChatTemplate ChatTemplate { get; }
    /// <summary>How this model writes tool calls, recognized from its chat template's text.</summary>
    internal Chat.Tools.ToolCallFormat ToolCallFormat { get; }

    /// <summary>The model's facts: architecture, size, types, context, chat template.</summary>
    public ModelInfo Info { get; }

    Model(LoadedModel loaded, ModelLoadOptions options)
    {
        _loaded = loaded;
        var config = loaded.Config;
        // The name was checked before loading (Validate).
        var (match, templateText) = SelectTemplate(loaded, options, config.Architecture);
        options.Progress?.Report(new ModelLoadProgress($"chat template: {match.Template.Name} ({match.Rule})", null));
        ChatTemplate = match.Template;
        ToolCallFormat = Chat.Tools.ToolCallFormat.Detect(templateText);
        int context = ContextFor(options.ContextLength, config);
        var matrices = loaded.Model.Weights.Matrices().ToList();
        var vectors = loaded.Model.Weights.Vectors().ToList();
        Info = new ModelInfo
        {
            Path = loaded.Path,
            Name = loaded.GgufMetadata?.GetStringOrNull(GgufKeys.Name) ?? System.IO.Path.GetFileNameWithoutExtension(loaded.Path.TrimEnd('/', '\\')),
            Architecture = config.Architecture,
            ParameterCount = matrices.Sum(m => m.View.ElementCount) + vectors.Sum(v => (long)v.Length),
            TensorTypes = matrices.GroupBy(m => m.Type.ToString()).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => g.Count()),
            WeightBytes = matrices.Sum(m => m.View.ByteSize) + vectors.Sum(v => (long)v.Length * sizeof(float)),
            TrainedContextLength = config.TrainedContextLength,
            ContextLength = context,
            VocabularySize = config.VocabSize,
            LayerCount = config.LayerCount,
            EmbeddingLength = config.EmbeddingLength,
            ExpertCount = config.ExpertCount,
            ExpertsPerToken = config.ExpertsPerToken,
            ChatTemplate = loaded.ChatTemplateText,
            ChatFormat = ChatTemplate.Name,
            Pooling = DeclaredPooling(loaded),
            Device = loaded.Model.Backend.Name,
        };
        var kvType = options.KvCacheType.ToElementType();
        int blocks = KvBlocks(loaded, options, context, kvType, out string sizing);
        var store = loaded.Model.CreateStore(blocks, kvType);
        try { _scheduler = new Scheduler(loaded.Model, store, () => _loaded.Tokenizer); }
        catch { store.Dispose(); throw; }
        Info = Info with { KvCacheType = options.KvCacheType, KvCacheCapacity = (int)Math.Min(int.MaxValue, store.Capacity) };
        options.Progress?.Report(new ModelLoadProgress(
            $"KV cache: {store.Capacity} tokens ({blocks} blocks of {store.BlockTokens}, {store.Type.ToString().ToLowerInvariant()}, up to {GiB(blocks * store.BlockBytes)}; {sizing})", null));
    }

    static string GiB(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):F2} GiB" : $"{bytes / (double)(1 << 20):F1} MiB";

    /// <summary>The context a model loaded with `contextLength` (<see cref="ModelLoadOptions.ContextLength"/>) gives its
    /// sessions by default.</summary>
    internal static int ContextFor(int contextLength, ModelConfig config) =>
        contextLength > 0 ? contextLength
        : contextLength == ModelLoadOptions.TrainedContext ? config.TrainedContextLength
        : Math.Min(config.TrainedContextLength, 4096);

    /// <summary>How many KV blocks the model's pool has: the budget asked for, or by default what `ParallelSequences`
    /// sequences of the full context need, capped by the memory left after the weights.</summary>
    static int KvBlocks(LoadedModel loaded, ModelLoadOptions options, int context, KvElementType type, out string sizing)
    {
        // Host memory left for the cache: what the process may use, less what it uses now (the weights it touched).
        long left = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes - Environment.WorkingSet;
        return KvBlockCount(loaded.Config, options.KvCacheBytes, options.ParallelSequences, context, type, left, out sizing);
    }

    /// <summary>The KV pool's block count for a budget (0: `parallel` full contexts, capped by half of `hostBytesLeft`),
    /// shared by the loader and <c>engine estimate</c> so the two cannot disagree.</summary>
    internal static int KvBlockCount(ModelConfig c, long kvCacheBytes, int parallel, int context, KvElementType type, long hostBytesLeft, out string sizing)
    {
        int bt = Llama.DefaultBlockTokens;
        long blockBytes = new KvPoolShape(c.LayerCount, 1, bt, c.KeyWidth, c.ValueWidth, type).BlockBytes;
        if (kvCacheBytes > 0)
        {
            long asked = kvCacheBytes / blockBytes;
            if (asked < 1)
                throw new ArgumentOutOfRangeException(nameof(kvCacheBytes),
                    $"KvCacheBytes (engine: --kv-budget) of {kvCacheBytes} bytes is less than one KV block of {bt} tokens ({blockBytes} bytes for this model): ask for more");
            sizing = "the budget asked for";
            return (int)Math.Min(asked, int.MaxValue / bt);
        }
        int contextBlocks = (context + bt - 1) / bt;
        long wanted = (long)Math.Max(1, parallel) * contextBlocks;
        long fits = Math.Max(contextBlocks, hostBytesLeft / 2 / blockBytes);
        sizing = fits < wanted ? "capped by the memory left after the weights" : $"{Math.Max(1, parallel)} sequences of {context} tokens";
        return (int)Math.Min(Math.Min(wanted, fits), int.MaxValue / bt);
    }

    // Compiled grammars by their text, the most recently used last: a grammar's automaton and masks grow as generations
    // explore it, so requests that repeat a schema (an agent's tools, an app's response format) reuse that work.
    readonly LinkedList<(string Key, Engine.Grammar.GrammarConstraint Constraint)> _grammars = new();
    const int GrammarCacheSize = 16;

    /// <summary>What constrains a generation: the caller's grammar or JSON schema, or a required tool call's grammar.</summary>
    /// <exception cref="GrammarException">The grammar or schema cannot be used; the message says why and where.</exception>
    internal Engine.Grammar.GrammarConstraint? Constraint(GenerateOptions options, string? callGrammar)
    {
        var (key, parameter) = callGrammar is not null ? ("gbnf:" + callGrammar, nameof(GenerateOptions.Tools))
            : options.Grammar is { } gbnf ? ("gbnf:" + gbnf, nameof(GenerateOptions.Grammar))
            : options.JsonSchema is { } schema ? ("schema:" + schema.GetRawText(), nameof(GenerateOptions.JsonSchema))
            : (null, null);
        if (key is null) return null;
        lock (_grammars)
            for (var node = _grammars.First; node is not null; node = node.Next)
                if (node.Value.Key == key)
                {
                    _grammars.Remove(node);
                    _grammars.AddLast(node);
                    return node.Value.Constraint;
                }
        Engine.Grammar.GrammarConstraint constraint;
        try
        {
            constraint = key.StartsWith("schema:", StringComparison.Ordinal)
                ? Engine.Grammar.GrammarConstraint.FromJsonSchema(key["schema:".Length..], Tokenizer)
                : Engine.Grammar.GrammarConstraint.FromGbnf(key["gbnf:".Length..], Tokenizer);
        }
        catch (GrammarException e) { throw new GrammarException(e.Message, parameter!); }
        lock (_grammars)
        {
            _grammars.AddLast((key, constraint));
            if (_grammars.Count > GrammarCacheSize) _grammars.RemoveFirst();
        }
        return constraint;
    }

    /// <summary>The prompt <see cref="Session.ChatAsync"/> feeds the model for a conversation: the chat template's
    /// render with the tools and options of <paramref name="options"/>, ending where the reply begins. The BOS token the
    /// tokenizer adds is not part of it.</summary>
    /// <param name="messages">The conversation.</param>
    /// <param name="options">Tools, tool choice and <see cref="GenerateOptions.EnableThinking"/>; null for none.</param>
    /// <exception cref="ChatTemplateException">The conversation does not fit the template, or the template failed.</exception>
    public string ApplyChatTemplate(IEnumerable<ChatTurn> messages, GenerateOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return RenderChat(messages, options ?? new GenerateOptions()).Rendered;
    }

    /// <summary>A conversation rendered for a reply, and what rendered it.</summary>
    internal (IChatTemplate Template, List<Chat.ChatMessage> Turns, IReadOnlyList<ChatTool> Tools, string Rendered) RenderChat(IEnumerable<ChatTurn> messages, GenerateOptions options)
    {
        options.ValidateTools(); // before their names reach the template
        var template = ChatTemplate;
        if (options.EnableThinking is { } thinking)
            template = template switch
            {
                Qwen3Template qwen3 when qwen3.EnableThinking != thinking => new Qwen3Template(thinking),
                // The variable transformers users pass: Qwen3's and SmolLM3's templates read it, others ignore it.
                JinjaChatTemplate jinja => jinja.With("enable_thinking", thinking),
                _ => template,
            };
        var turns = messages.Select((m, i) => m is null ? throw new ArgumentException($"message {i} is null", nameof(messages))
            : new Chat.ChatMessage(m.Role, m.Content ?? "") { ToolCalls = m.ToolCalls ?? [], ToolCallId = m.ToolCallId, ToolName = m.ToolName }).ToList();
        // Tool choice "none" hides the tools: the model is not told of functions it may not call.
        var tools = options.ToolChoice.Equals(ToolChoice.None) ? [] : options.Tools;
        return (template, turns, tools, template.Render(turns, addGenerationPrompt: true, tools));
    }

    /// <summary>The chat template, in this order: the Jinja text the caller gave, the built-in format the caller named, the
    /// model's own Jinja template, and the built-in format recognized from the model (for models without a template, or
    /// whose template does not parse). Also returns the Jinja text in use, from which tool calls are read.</summary>
    static (ChatTemplateMatch Match, string? Text) SelectTemplate(LoadedModel loaded, ModelLoadOptions options, string? architecture)
    {
        if (options.ChatTemplateText is { } given)
            return (new(Jinja(given, "jinja"), "given template text"), given);
        if (options.ChatTemplate is { } name) // checked before loading (Validate)
            return (new(ChatTemplates.ByName(name)!, "chosen"), null);
        var own = loaded.ChatTemplateText;
        string? problem = null;
        if (!string.IsNullOrWhiteSpace(own))
        {
            try { return (new(Jinja(own, "jinja"), "the model's own template"), own); }
            catch (ChatTemplateException e) { problem = e.Message; }
        }
        var detected = ChatTemplates.Detect(own, architecture, piece => HasToken(loaded, piece));
        return (problem is null ? detected : detected with { Rule = $"{detected.Rule}; the model's template cannot be used: {problem}" }, own);

        JinjaChatTemplate Jinja(string text, string templateName) =>
            new(text, SpecialText(loaded, t => t.Bos), SpecialText(loaded, t => t.Eos), kwargs: null, name: templateName);
    }

    /// <summary>A special token's text (bos_token, eos_token for templates); null when the vocabulary has none or there is
    /// no tokenizer.</summary>
    static string? SpecialText(LoadedModel loaded, Func<ITokenizer, int?> which)
    {
        try { return which(loaded.Tokenizer) is int id ? loaded.Tokenizer.Tokens[id] : null; }
        catch (ModelFormatException) { return null; }
    }

    /// <summary>The ids of the tool-call format's marker tokens, found once: a chat with tools shows them to the parser.</summary>
    internal IReadOnlySet<int> ToolCallMarkerTokens => _toolCallMarkerTokens ??= SpecialTokenIds(ToolCallFormat.MarkerTokens);
    IReadOnlySet<int>? _toolCallMarkerTokens;

    /// <summary>The ids of the vocabulary's tokens with these exact texts (texts that are not one token are skipped).</summary>
    IReadOnlySet<int> SpecialTokenIds(IReadOnlyList<string> texts)
    {
        var ids = new HashSet<int>();
        var tokens = Tokenizer.Tokens;
        foreach (var text in texts)
        {
            int id = IndexOf(tokens, text);
            if (id >= 0) ids.Add(id);
        }
        return ids;

        // Special tokens sit at the end of most vocabularies (added tokens), so the search starts there.
        static int IndexOf(IReadOnlyList<string> tokens, string text)
        {
            for (int i = tokens.Count - 1; i >= 0; i--)
                if (tokens[i] == text) return i;
            return -1;
        }
    }

    /// <summary>Whether the vocabulary holds a token's text, for recognizing a chat format; no tokenizer holds none.</summary>
    static bool HasToken(LoadedModel loaded, string piece)
    {
        try { return loaded.Tokenizer.Tokens.Contains(piece); }
        catch (ModelFormatException) { return false; }
    }

    /// <summary>Loads a model: a GGUF file, a Hugging Face folder (config.json, *.safetensors, tokenizer.json), or a
    /// .safetensors file with config.json beside it. Every count, length and offset in the file is checked before
    /// anything is allocated.</summary>
    /// <param name="path">The file or folder.</param>
    /// <param name="options">Device, threads, context length, progress; null for the defaults.</param>
    /// <exception cref="FileNotFoundException">No file or folder at <paramref name="path"/>.</exception>
    /// <exception cref="ModelFormatException">The file is damaged or not a supported model; the message says what and where.</exception>
    /// <exception cref="NotSupportedException">The model uses an architecture or type the engine does not run.</exception>
    public static Model Load(string path, ModelLoadOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= new ModelLoadOptions();
        Validate(options);
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new FileNotFoundException($"no model file or folder at '{path}'", path);
        var progress = options.Progress;
        void Say(string message) => progress?.Report(new ModelLoadProgress(message, null));
        progress?.Report(new ModelLoadProgress($"opening {path}", 0));
        var loaded = LoadedModel.Open(path, new ModelOptions
        {
            Threads = options.Threads,
            RepackWeights = options.RepackWeights,
            QuantizedCheckpointFloatActivations = options.QuantizedCheckpointFloatActivations,
            StageFactory = (options.Device ?? ComputeDevice.Cpu).StageFactory(options, Say),
            Progress = Say,
        });
        try
        {
            // Checked before the model takes its KV cache, so a vector made for another model fails fast.
            options.ControlVector?.CheckFits(loaded.Config.LayerCount, loaded.Config.EmbeddingLength);
            var model = new Model(loaded, options);
            // Kept for the model's life: the hook goes when the model does.
            if (options.ControlVector is { } vector) model.ApplyControlVector(vector);
            progress?.Report(new ModelLoadProgress($"loaded {model.Info.Name}: {model.Info.Architecture}, {model.Info.ParameterCount / 1e6:F1}M parameters on {model.Info.Device}", 1));
            return model;
        }
        catch { loaded.Dispose(); throw; }
    }

    /// <summary>Checks the options before anything is read or allocated.</summary>
    static void Validate(ModelLoadOptions options)
    {
        if (options.ContextLength < 0 && options.ContextLength != ModelLoadOptions.TrainedContext)
            throw new ArgumentOutOfRangeException(nameof(options), $"ContextLength must be 0 (the model's trained context, at most 4096), ModelLoadOptions.TrainedContext (all of it) or more, got {options.ContextLength}");
        if (options.Threads < 0)
            throw new ArgumentOutOfRangeException(nameof(options), $"Threads must be 0 (one per core) or more, got {options.Threads}");
        if (options.GpuLayers < 0)
            throw new ArgumentOutOfRangeException(nameof(options), $"GpuLayers must be 0 or more (null: every layer), got {options.GpuLayers}");
        if (options.KvCacheBytes < 0)
            throw new ArgumentOutOfRangeException(nameof(options), $"KvCacheBytes must be 0 (sized for ParallelSequences full contexts) or more, got {options.KvCacheBytes}");
        if (options.ParallelSequences < 1)
            throw new ArgumentOutOfRangeException(nameof(options), $"ParallelSequences must be 1 or more, got {options.ParallelSequences}");
        if (!Enum.IsDefined(options.KvCacheType))
            throw new ArgumentOutOfRangeException(nameof(options), $"KvCacheType {(int)options.KvCacheType} is not f16, f32 or q8_0");
        if (options.ChatTemplate is { } name && ChatTemplates.ByName(name) is null)
            throw new ArgumentException($"unknown chat template '{name}': use {ChatTemplates.Names}", nameof(options));
        if (options.ChatTemplateText is { } text)
        {
            try { _ = new JinjaChatTemplate(text, null, null); }
            catch (ChatTemplateException e) { throw new ArgumentException($"ChatTemplateText: {e.Message}", nameof(options)); }
        }
    }

    /// <summary>Loads a model on a worker thread (see <see cref="Load"/>), so a UI or server thread is not blocked while
    /// the weights are prepared.</summary>
    /// <param name="path">The file or folder.</param>
    /// <param name="options">Device, threads, context length, progress; null for the defaults.</param>
    /// <param name="cancellationToken">Cancels the load if it has not started yet.</param>
    public static Task<Model> LoadAsync(string path, ModelLoadOptions? options = null, CancellationToken cancellationToken = default) =>
        Task.Run(() => Load(path, options), cancellationToken);

    /// <summary>A new conversation holding <see cref="ModelInfo.ContextLength"/> tokens. Dispose it to return its cache memory.</summary>
    public Session CreateSession() => CreateSession(Info.ContextLength);

    /// <summary>A new conversation that holds up to <paramref name="contextLength"/> tokens (prompt and generated text
    /// together). Its tokens take blocks of the model's KV cache as they arrive; dispose it to give them back.</summary>
    /// <param name="contextLength">Tokens the session can hold, 1 or more, at most the model's KV cache capacity
    /// (<see cref="ModelInfo.KvCacheCapacity"/>).</param>
    public Session CreateSession(int contextLength)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (contextLength <= 0)
            throw new ArgumentOutOfRangeException(nameof(contextLength), $"a session must hold at least one token, got {contextLength}");
        if (contextLength > Info.KvCacheCapacity)
            throw new ArgumentOutOfRangeException(nameof(contextLength),
                $"a session of {contextLength} tokens cannot fit in the model's KV cache of {Info.KvCacheCapacity} tokens: ask for fewer, " +
                "or load the model with a larger KvCacheBytes (engine: --kv-budget) or a smaller KvCacheType");
        lock (_sessions)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var session = new Session(this, contextLength);
            _sessions.Add(session);
            return session;
        }
    }

    /// <summary>The KV cache's state now: blocks in use and cached, prefix-cache hits, preemptions.</summary>
    public KvCacheStatistics KvCacheStatistics => _scheduler.Statistics();

    internal void Forget(Session session) { lock (_sessions) _sessions.Remove(session); }

    /// <summary>Runs a pass that needs the model to itself (embeddings) on the scheduler's thread, between two steps of
    /// the sessions' generations. The wait is asynchronous; cancelling it abandons a pass that has not started.</summary>
    internal async ValueTask RunPassAsync(Action<Llama> pass, CancellationToken cancellationToken)
    {
        ThrowIfReentered();
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _scheduler.RunExclusive(pass).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    internal static void ThrowIfReentered()
    {
        if (Scheduler.OnSchedulerThread)
            throw new InvalidOperationException("the model was called from inside a forward pass (an Observer that generates or embeds): " +
                                                "record what the observer needs and run the model after the pass");
    }

    /// <summary>Text to token ids, as llama.cpp tokenizes it.</summary>
    /// <param name="text">The text.</param>
    /// <param name="addSpecialTokens">Add the BOS (and EOS) tokens the vocabulary asks for.</param>
    /// <param name="parseSpecialTokens">Turn control-token text such as "&lt;|im_start|&gt;" into those tokens; off, it is
    /// tokenized as plain text (safer for text from users).</param>
    public IReadOnlyList<int> Tokenize(string text, bool addSpecialTokens = true, bool parseSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Tokenizer.Encode(text, addSpecialTokens, parseSpecialTokens);
    }

    /// <summary>Token ids back to text; control tokens are skipped, as llama.cpp's detokenizer does.</summary>
    /// <param name="tokens">Token ids, each within the vocabulary.</param>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside the vocabulary.</exception>
    public string Detokenize(IEnumerable<int> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var ids = tokens.ToArray();
        foreach (var id in ids) CheckToken(id, nameof(tokens));
        return Tokenizer.Decode(ids);
    }

    /// <summary>One token as text, special tokens shown as their text ("&lt;|im_end|&gt;").</summary>
    /// <param name="token">A token id within the vocabulary.</param>
    public string TokenText(int token)
    {
        CheckToken(token, nameof(token));
        return Tokenizer.PieceText(token);
    }

    /// <summary>True for the tokens that end a turn (EOS, EOT, &lt;|im_end|&gt;, &lt;|eot_id|&gt;, ...).</summary>
    /// <param name="token">A token id.</param>
    public bool IsEndOfGeneration(int token) => Tokenizer.IsEndOfGeneration(token);

    void CheckToken(int id, string parameter)
    {
        if ((uint)id >= (uint)Info.VocabularySize)
            throw new ArgumentOutOfRangeException(parameter, $"token id {id} is outside the vocabulary of {Info.VocabularySize}");
    }

    /// <summary>Embeddings of texts: each text's final hidden states (after the output norm, as llama.cpp's embedding
    /// mode) pooled into one vector of <see cref="ModelInfo.EmbeddingLength"/> floats. Each text runs in a cache of its
    /// own, so the results do not depend on each other or on any session.</summary>
    /// <param name="texts">The texts; each must fit in <see cref="ModelInfo.ContextLength"/> tokens.</param>
    /// <param name="options">Pooling and normalization; null for the model's pooling, normalized.</param>
    /// <param name="cancellationToken">Checked between texts.</param>
    /// <returns>One vector per text, in order.</returns>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters",
        Justification = "The overloads ship together and differ in their first parameter's type (one text or many), so no call is ambiguous.")]
    public async Task<IReadOnlyList<float[]>> EmbedAsync(IEnumerable<string> texts, EmbeddingOptions? options = null, CancellationToken cancellationToken = default) =>
        (await EmbedCountingAsync(texts, options, cancellationToken).ConfigureAwait(false)).Vectors;

    /// <summary>The embeddings and the number of tokens they read (for the embedding generator's usage).</summary>
    internal async Task<(IReadOnlyList<float[]> Vectors, long Tokens)> EmbedCountingAsync(IEnumerable<string> texts, EmbeddingOptions? options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var list = texts.ToList();
        options ??= new EmbeddingOptions();
        var pooling = options.Pooling ?? Info.Pooling ?? EmbeddingPooling.Mean;
        if (!Enum.IsDefined(pooling)) throw new ArgumentOutOfRangeException(nameof(options), $"pooling {(int)pooling} is not mean, cls or last");
        var prompts = new List<int[]>(list.Count);
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] is null) throw new ArgumentException($"text {i} is null", nameof(texts));
            var ids = Tokenizer.Encode(list[i], addSpecial: true, parseSpecial: false);
            if (ids.Length == 0) throw new ArgumentException($"text {i} is empty: there is nothing to embed", nameof(texts));
            if (ids.Length > Info.ContextLength)
                throw new ArgumentException($"text {i} is {ids.Length} tokens, more than the context of {Info.ContextLength}: split it or load the model with a larger ContextLength", nameof(texts));
            prompts.Add(ids);
        }
        var vectors = new float[prompts.Count][];
        for (int i = 0; i < prompts.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var prompt = prompts[i];
            vectors[i] = await Embed(prompt, pooling, options.Normalize, cancellationToken).ConfigureAwait(false);
        }
        return (vectors, prompts.Sum(p => (long)p.Length));
    }

    /// <summary>The embedding of one text (see <see cref="EmbedAsync(IEnumerable{string}, EmbeddingOptions?, CancellationToken)"/>).</summary>
    /// <param name="text">The text.</param>
    /// <param name="options">Pooling and normalization; null for the model's pooling, normalized.</param>
    /// <param name="cancellationToken">Cancels the request if it has not started.</param>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters",
        Justification = "The overloads ship together and differ in their first parameter's type (one text or many), so no call is ambiguous.")]
    public async Task<float[]> EmbedAsync(string text, EmbeddingOptions? options = null, CancellationToken cancellationToken = default) =>
        (await EmbedAsync([text], options, cancellationToken).ConfigureAwait(false))[0];

    async Task<float[]> Embed(int[] prompt, EmbeddingPooling pooling, bool normalize, CancellationToken cancellationToken)
    {
        int width = Info.EmbeddingLength;
        var hidden = new float[prompt.Length * width];
        await RunPassAsync(network =>
        {
            using var cache = network.CreateCache(prompt.Length);
            network.ForwardHidden(prompt, 0, cache, hidden);
        }, cancellationToken).ConfigureAwait(false);
        var vector = new float[width];
        switch (pooling)
        {
            case EmbeddingPooling.Cls: hidden.AsSpan(0, width).CopyTo(vector); break;
            case EmbeddingPooling.Last: hidden.AsSpan((prompt.Length - 1) * width, width).CopyTo(vector); break;
            default:
                // Summed in double, then divided, so long texts lose no precision to the running sum.
                var sum = new double[width];
                for (int t = 0; t < prompt.Length; t++)
                {
                    var row = hidden.AsSpan(t * width, width);
                    for (int i = 0; i < width; i++) sum[i] += row[i];
                }
                for (int i = 0; i < width; i++) vector[i] = (float)(sum[i] / prompt.Length);
                break;
        }
        if (normalize)
        {
            float norm = TensorPrimitives.Norm(vector);
            if (norm > 0) TensorPrimitives.Divide(vector, norm, vector);
        }
        return vector;
    }

    static EmbeddingPooling? DeclaredPooling(LoadedModel loaded)
    {
        var md = loaded.GgufMetadata;
        if (md is null) return null;
        return md.GetIntegerOrNull(GgufKeys.Arch(loaded.Config.Architecture, "pooling_type")) switch
        {
            1 => EmbeddingPooling.Mean,
            2 => EmbeddingPooling.Cls,
            3 => EmbeddingPooling.Last,
            _ => null, // 0 none, 4 rank, or absent: the caller's choice, or mean
        };
    }

    /// <summary>Memory the model holds now: its weights, plus its KV cache (on the CPU, the blocks touched so far).</summary>
    public long BytesInMemory
    {
        get
        {
            return Info.WeightBytes + _scheduler.Store.Bytes;
        }
    }

    /// <summary>Research hook: receives every named intermediate of each forward pass (llama.cpp's names: "attn_norm",
    /// "Qcur", "kqv_out", "ffn_out", "l_out", "result_norm", "result_output", the MoE routing), as a read-only copy.
    /// Public on purpose for researchers and teachers; null (the default) costs nothing. Set it while no generation runs.
    /// To edit values, or to see one sequence's rows with their positions, use <see cref="AddHook"/>.</summary>
    public ForwardObserver? Observer
    {
        get => Network.Observer;
        set => Network.Observer = value;
    }

    /// <summary>
    /// Registers a research hook: `hook` is called with the intermediate values at the points `points` picks, during prompt
    /// processing and every decode step of every sequence (sessions, the chat client, the server, research runs), and may
    /// change them in place. The registration lasts until the result is disposed.
    /// <code>
    /// using (model.AddHook("blocks.*.hook_resid_post", (context, values) => Record(context, values.ToArray())))
    ///     await foreach (var _ in session.GenerateAsync("Once upon a time")) { }
    /// </code>
    /// <para>Points: llama.cpp's tensor names (inp_embd, l_in, attn_norm, Qcur, Kcur, Vcur, kq, kq_soft_max, kqv_out,
    /// attn_out, ffn_inp, ffn_norm, ffn_gate, ffn_up, ffn_swiglu, ffn_out, l_out, result_norm, result_output and the MoE
    /// routing ffn_moe_*), each for every layer, or <c>name.LAYER</c>, with <c>*</c> wildcards and commas between items;
    /// or TransformerLens's names (<c>blocks.3.hook_resid_post</c>, <c>blocks.*.attn.hook_pattern</c>, <c>hook_embed</c>).
    /// A hook on kq or kq_soft_max makes its layer form the attention scores explicitly (slower, and equal to the fast
    /// path within float rounding). Registering or removing a hook empties the prefix cache, so no prompt reuses keys
    /// computed under other hooks (a session's own hooks keep that session's blocks out of the prefix cache instead). With no hook registered a pass costs what it did without them.</para>
    /// </summary>
    /// <param name="points">Which hook points, e.g. <c>"l_out.3"</c>, <c>"kq_soft_max,l_out"</c>, <c>"blocks.*.hook_z"</c>.</param>
    /// <param name="hook">Called with each intermediate; may change the values in place.</param>
    /// <returns>The registration; disposing it removes the hook.</returns>
    /// <exception cref="ArgumentException">The pattern picks no hook point, or names a layer the model does not have.</exception>
    public IDisposable AddHook(string points, ForwardHook hook)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return Network.Hooks.Add(points, hook);
    }

    /// <summary>
    /// Steers every sequence of the model (sessions, the chat client, the server, embeddings) with a control vector until
    /// the result is disposed: each layer's direction is added to every position's hidden state at that layer's output,
    /// as llama.cpp's <c>--control-vector</c> does, through a hook on "l_out" (see <see cref="AddHook"/>). Disposing the
    /// scope removes it, and the model computes exactly what it computed before. Several vectors may be applied at once;
    /// their directions add up.
    /// <code>
    /// var calm = ControlVector.Load("calm.gguf");
    /// using (model.ApplyControlVector(calm, 10, 20))
    ///     await foreach (var token in session.GenerateAsync("Today I feel")) Console.Write(token.Text);
    /// </code>
    /// </summary>
    /// <param name="vector">The directions; its width must be the model's embedding length, its layers below the layer count.</param>
    /// <returns>The steering; disposing it removes the vector.</returns>
    /// <exception cref="ControlVectorException">The vector does not fit the model: another width
    /// (<see cref="ControlVectorErrorKind.WidthMismatch"/>) or a layer the model does not have
    /// (<see cref="ControlVectorErrorKind.LayerOutOfRange"/>).</exception>
    public IDisposable ApplyControlVector(ControlVector vector)
    {
        ArgumentNullException.ThrowIfNull(vector);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return vector.AddTo((points, hook) => Network.Hooks.Add(points, hook), Info.LayerCount, Info.EmbeddingLength);
    }

    /// <summary>Steers with the layers <paramref name="firstLayer"/> to <paramref name="lastLayer"/> of a control vector
    /// only, both included (llama.cpp's <c>--control-vector-layer-range</c>): <see cref="ApplyControlVector(ControlVector)"/>
    /// of <c>vector.ForLayers(firstLayer, lastLayer)</c>.</summary>
    /// <param name="vector">The directions.</param>
    /// <param name="firstLayer">The first layer steered.</param>
    /// <param name="lastLayer">The last layer steered, not below <paramref name="firstLayer"/>.</param>
    /// <returns>The steering; disposing it removes the vector.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="lastLayer"/> is below <paramref name="firstLayer"/>.</exception>
    /// <exception cref="ControlVectorException">The vector does not fit the model.</exception>
    public IDisposable ApplyControlVector(ControlVector vector, int firstLayer, int lastLayer)
    {
        ArgumentNullException.ThrowIfNull(vector);
        return ApplyControlVector(vector.ForLayers(firstLayer, lastLayer));
    }

    /// <summary>A new Microsoft.Extensions.AI chat client over this model (<see cref="EngineChatClient"/>), which composes
    /// with <c>ChatClientBuilder</c> middleware like any other client. Each client keeps a session of its own once used:
    /// keep the client for the conversation and dispose it to return that session's cache.</summary>
    public IChatClient AsChatClient() => new EngineChatClient(this);

    /// <summary>This model as a Microsoft.Extensions.AI embedding generator (<see cref="EngineEmbeddingGenerator"/>).</summary>
    /// <param name="options">Pooling and normalization for every request; null for the model's pooling, normalized.</param>
    public IEmbeddingGenerator<string, Embedding<float>> AsEmbeddingGenerator(EmbeddingOptions? options = null) => new EngineEmbeddingGenerator(this, options);

    /// <summary>Disposes every open session and returns all of the model's memory, CPU and GPU.</summary>
    public void Dispose()
    {
        Session[] open;
        lock (_sessions)
        {
            if (_disposed) return;
            open = [.. _sessions];
        }
        foreach (var session in open) session.Dispose();
        lock (_sessions) _disposed = true;
        _scheduler.Dispose();
        _scheduler.Store.Dispose();
        _loaded.Dispose();
    }
}
