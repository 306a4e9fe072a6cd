using System.Numerics.Tensors;
using Engine.Models;
using Engine.Tokenizers;

namespace Engine.Batching;

/// <summary>
/// Continuous batching: one thread runs the model step after step, and each step takes every running sequence's next
/// token plus chunks of waiting prompts (chunked prefill), up to the model's batch of rows, so the weights are read once
/// per step for all of them and a long prompt never stalls the others' streams for more than one chunk.
///
/// - Admission is first come, first served, by free KV blocks: a waiting request starts when the blocks for its next
///   chunk are free; a request never overtakes an older one.
/// - When blocks run out, idle sequences (a session between replies) give theirs back first, least recently used
///   first, then the youngest running request is preempted: its blocks are freed and it waits to be computed again
///   (mostly from the prefix cache). The oldest request is never preempted for a younger one, so a request that fits
///   in the pool alone always finishes.
/// - A cancelled request (or a disposed session) gives its blocks back before the next step.
/// - Each request samples with its own sampler, stop strings and limits, and streams its tokens as they come.
///
/// Every row's result depends only on its own sequence (the kernels are batch-invariant), so a request's tokens are the
/// same batched or alone, at any temperature.
/// </summary>
internal sealed class Scheduler : IDisposable
{
    readonly Llama _network;
    readonly KvStore _store;
    readonly KvBlockManager _blocks;
    readonly Func<ITokenizer> _tokenizer;
    readonly Lock _gate = new();
    readonly List<GenerationJob> _waiting = [];
    readonly List<GenerationJob> _running = [];
    readonly HashSet<KvSequence> _holding = [];
    readonly Queue<(Action<Llama> Pass, TaskCompletionSource Done)> _exclusive = new();
    // Copy-on-write of shared blocks a sequence goes on from partway: (shared block, the sequence's copy), done on the
    // scheduler thread before the next step; the sequence holds the shared block until then.
    readonly List<(int From, int To)> _copies = [];
    readonly ForwardBatch _batch;
    readonly List<(GenerationJob Job, int From, int Count)> _plan = [];
    readonly float[] _logits;
    readonly float[] _scratch;
    readonly ManualResetEventSlim _wake = new(false);
    readonly Thread _thread;
    volatile bool _stopping;
    long _step, _order;
    [ThreadStatic] static Scheduler? t_current;

    public Scheduler(Llama network, KvStore store, Func<ITokenizer> tokenizer)
    {
        _network = network;
        _store = store;
        _tokenizer = tokenizer;
        _blocks = new KvBlockManager(store.Blocks);
        _batch = new ForwardBatch(store.BlockTokens);
        int vocab = network.Config.VocabSize;
        _logits = new float[(long)network.MaxBatch * vocab <= int.MaxValue ? network.MaxBatch * vocab : throw new InvalidOperationException("batch x vocabulary too large")];
        _scratch = new float[vocab];
        _thread = new Thread(Loop) { IsBackground = true, Name = "engine scheduler" };
        _thread.Start();
    }

    public KvStore Store => _store;
    long _preemptions;
    public long Steps => Interlocked.Read(ref _step);
    /// <summary>Tests: every step's batch, as the model saw it (rows per sequence), before it runs.</summary>
    internal Action<ForwardBatch>? StepTap { get; set; }

    /// <summary>The pool's state, read under the lock.</summary>
    public KvCacheStatistics Statistics()
    {
        lock (_gate)
            return new KvCacheStatistics
            {
                CapacityTokens = (int)Math.Min(int.MaxValue, _store.Capacity),
                BlockTokens = _store.BlockTokens,
                Blocks = _blocks.Blocks,
                BlocksInUse = _blocks.Held,
                CachedBlocks = _blocks.Cached,
                Bytes = _store.Bytes,
                PrefixCacheHitTokens = _blocks.HitTokens,
                PrefixCacheLookupTokens = _blocks.LookupTokens,
                Evictions = _blocks.Evictions,
                Preemptions = _preemptions,
                RunningRequests = _running.Count,
                WaitingRequests = _waiting.Count,
            };
    }

    /// <summary>True on the scheduler's own thread (inside a forward pass: an observer).</summary>
    public static bool OnSchedulerThread => t_current is not null;

    /// <summary>Queues a generation on `sequence`. `resolve` gets the sequence's tokens (under the lock, no job running on
    /// it) and says how many to keep and what to add; it may throw to refuse the request.</summary>
    public void Start(GenerationJob job, Func<List<int>, (int Keep, int[] Append)> resolve)
    {
        var sequence = job.Sequence;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_stopping, this);
            if (sequence.Closed) throw new ObjectDisposedException("session", "the session was disposed");
            if (sequence.Job is not null) throw new InvalidOperationException("a generation is already running on this session");
            var (keep, append) = resolve(sequence.Tokens);
            if (keep + append.Length > sequence.ContextLength)
                throw new ContextOverflowException(sequence.ContextLength, keep, append.Length);
            bool continuesYielded = append.Length == 0 && keep == sequence.Tokens.Count && sequence.EndsWithYielded;
            if (append.Length == 0 && !continuesYielded && Math.Min(sequence.Computed, keep) >= keep)
                throw new ArgumentException("the prompt is empty and there is nothing to continue: give some text or at least one token", "prompt");
            if (append.Length == 0)
            {
                // The last token is read again for its logits (the scheduler may have run ahead and stored it already).
                append = [sequence.Tokens[keep - 1]];
                keep--;
            }
            Truncate(sequence, keep);
            sequence.Tokens.AddRange(append);
            sequence.EndsWithYielded = false;
            job.PromptStart = keep;
            job.GeneratedStart = sequence.Tokens.Count;
            job.Order = ++_order;
            sequence.Job = job;
            _waiting.Add(job);
        }
        _wake.Set();
    }

    /// <summary>Asks for a job to stop; it is rolled back to what its reader saw before the next step.</summary>
    public void Cancel(GenerationJob job)
    {
        job.CancelRequested = true;
        _wake.Set();
    }

    /// <summary>A reader took a token: the job may run ahead again.</summary>
    public void Wake() => _wake.Set();

    /// <summary>The sequence's owner is gone: its blocks go back (the full ones stay in the prefix cache).</summary>
    public void Close(KvSequence sequence)
    {
        lock (_gate)
        {
            sequence.Closed = true;
            if (sequence.Job is { } job) job.CancelRequested = true;
            else ReleaseAll(sequence);
        }
        _wake.Set();
    }

    /// <summary>Forgets a sequence's tokens (no job may be running on it).</summary>
    public void Reset(KvSequence sequence)
    {
        lock (_gate)
        {
            if (sequence.Job is not null) throw new InvalidOperationException("a generation is running on this session: finish or cancel it first");
            ReleaseAll(sequence);
            sequence.Tokens.Clear();
            sequence.EndsWithYielded = false;
        }
    }

    /// <summary>A copy of the sequence's tokens: all of them, or only those whose keys and values are computed.</summary>
    /// <summary>A copy of the tokens the sequence's model has been shown or will be shown by its running generation: all
    /// of them but the last yielded one, which the next generation reads first. It does not depend on how far the
    /// scheduler has run ahead of the reader.</summary>
    public int[] ShownTokensOf(KvSequence sequence)
    {
        lock (_gate) return sequence.Tokens.GetRange(0, sequence.Tokens.Count - (sequence.EndsWithYielded ? 1 : 0)).ToArray();
    }

    /// <summary>Runs `pass` on the scheduler thread between two steps, with the model to itself (embeddings, logits of a
    /// whole sequence, research passes).</summary>
    public Task RunExclusive(Action<Llama> pass)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_stopping, this);
            _exclusive.Enqueue((pass, done));
        }
        _wake.Set();
        return done.Task;
    }

    long _hooksVersion;

    void Loop()
    {
        t_current = this;
        while (!_stopping)
        {
            _wake.Reset();
            RunExclusivePasses();
            bool planned;
            lock (_gate)
            {
                HandleCancellations();
                CopyBlocks();
                if (_network.Hooks.Version != _hooksVersion)
                {
                    // Hooks were added or removed: what the prefix cache holds was computed under others.
                    _hooksVersion = _network.Hooks.Version;
                    _blocks.ForgetAll();
                }
                planned = Plan();
            }
            if (!planned)
            {
                lock (_gate) if (_exclusive.Count > 0 || _stopping) continue;
                _wake.Wait();
                continue;
            }
            Interlocked.Increment(ref _step);
            int vocab = _network.Config.VocabSize;
            try
            {
                StepTap?.Invoke(_batch);
                _network.Forward(_batch, _store, _logits.AsSpan(0, _batch.LogitRowCount * vocab));
            }
            catch (Exception e)
            {
                lock (_gate) foreach (var (job, _, _) in _plan) Fail(job, e);
                continue;
            }
            lock (_gate) Advance();
        }
        lock (_gate)
        {
            var error = new ObjectDisposedException("model", "the model was disposed");
            foreach (var job in _running.Concat(_waiting).ToList()) Fail(job, error);
            while (_exclusive.TryDequeue(out var e)) e.Done.TrySetException(error);
        }
    }

    void RunExclusivePasses()
    {
        while (true)
        {
            (Action<Llama> Pass, TaskCompletionSource Done) next;
            lock (_gate) if (!_exclusive.TryDequeue(out next)) return;
            try
            {
                next.Pass(_network);
                next.Done.TrySetResult();
            }
            catch (Exception e) { next.Done.TrySetException(e); }
        }
    }

    void HandleCancellations()
    {
        foreach (var job in _running.Concat(_waiting).Where(j => j.CancelRequested).ToList())
        {
            var sequence = job.Sequence;
            // Keep what the reader saw: the prompt's computed part while it is being read, else the prompt and the
            // tokens the reader took (the last of them not yet read by the model, as after any generation).
            Truncate(sequence, job.PromptDone ? job.GeneratedStart + job.Read : Math.Min(sequence.Computed, sequence.Tokens.Count));
            sequence.EndsWithYielded = job.PromptDone && job.Read > 0;
            End(job, sequence.Closed ? new ObjectDisposedException("session", "the session was disposed") : new OperationCanceledException());
            if (sequence.Closed) ReleaseAll(sequence);
        }
    }

    void CopyBlocks()
    {
        foreach (var (from, to) in _copies)
        {
            _store.CopyBlock(from, to);
            _blocks.Release(from);
        }
        _copies.Clear();
    }

    /// <summary>Builds the next step's batch: running jobs first (oldest first), then waiting ones, within the row budget.
    /// False when there is nothing to run.</summary>
    bool Plan()
    {
        _plan.Clear();
        _batch.Clear();
        int budget = _network.MaxBatch;
        foreach (var job in _running.ToList())
        {
            if (budget == 0) break;
            if (!_running.Contains(job)) continue; // preempted by an older job's need in this loop
            var sequence = job.Sequence;
            if (job.PromptDone && job.Unread >= 2) continue; // its reader is behind: let it catch up
            int count = Math.Min(sequence.Tokens.Count - sequence.Computed, budget);
            if (count <= 0) continue;
            count = Reserve(job, count);
            if (count <= 0) continue;
            Add(job, count);
            budget -= count;
        }
        while (budget > 0 && _waiting.Count > 0)
        {
            var job = _waiting[0];
            var sequence = job.Sequence;
            if (!job.Admitted) Admit(job);
            else if (sequence.Computed == 0 && sequence.Blocks.Count == 0) MatchPrefix(sequence);
            int count = Math.Min(sequence.Tokens.Count - sequence.Computed, budget);
            // A new request is the youngest, so it only takes free blocks (and idle sequences'); a preempted one may take
            // back the blocks of requests younger than itself.
            count = Reserve(job, count);
            if (count <= 0) break;
            _waiting.RemoveAt(0);
            InsertRunning(job);
            Add(job, count);
            budget -= count;
        }
        return _plan.Count > 0;
    }

    void Add(GenerationJob job, int count)
    {
        var sequence = job.Sequence;
        if (_network.Hooks.HasHooksFor(sequence.Id)) sequence.Unshared = true;
        int from = sequence.Computed;
        bool last = from + count == sequence.Tokens.Count;
        _batch.Add(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(sequence.Tokens).Slice(from, count), from,
            System.Runtime.InteropServices.CollectionsMarshal.AsSpan(sequence.Blocks), last ? LogitsWanted.Last : LogitsWanted.None,
            sequence.Id, job.PromptDone ? ForwardPhase.Decode : ForwardPhase.Prompt);
        _plan.Add((job, from, count));
    }

    /// <summary>First admission: the prompt's full blocks are looked up in the prefix cache; what is left is the job's
    /// prompt to compute.</summary>
    void Admit(GenerationJob job)
    {
        var sequence = job.Sequence;
        MatchPrefix(sequence);
        job.Admitted = true;
        job.CachedTokens = sequence.Computed;
        job.PromptTokens = job.GeneratedStart - sequence.Computed;
        job.Watch.Start();
    }

    /// <summary>Holds the cached blocks that continue the sequence's computed part, block by block, leaving at least its
    /// last token to compute (its logits are needed).</summary>
    void MatchPrefix(KvSequence sequence)
    {
        if (sequence.Unshared || _network.Hooks.HasHooksFor(sequence.Id)) return;
        int bt = _store.BlockTokens;
        while (sequence.Computed % bt == 0 && sequence.Blocks.Count == sequence.Computed / bt && sequence.Computed + bt <= sequence.Tokens.Count - 1)
        {
            var tokens = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(sequence.Tokens).Slice(sequence.Computed, bt);
            if (!_blocks.TryHold(sequence.LastName, tokens, out int block, out ulong name)) break;
            sequence.Blocks.Add(block);
            sequence.Names.Add(name);
            sequence.Computed += bt;
            _holding.Add(sequence);
        }
    }

    /// <summary>Takes the blocks for `count` more positions of the job's sequence: free ones, then idle sequences', then
    /// the youngest running jobs' (not yet in this step). Returns how many positions it got blocks for.</summary>
    int Reserve(GenerationJob job, int count)
    {
        var sequence = job.Sequence;
        int bt = _store.BlockTokens;
        int needed = (sequence.Computed + count + bt - 1) / bt;
        while (sequence.Blocks.Count < needed)
        {
            if (_blocks.TryAllocate(out int block))
            {
                sequence.Blocks.Add(block);
                _holding.Add(sequence);
                continue;
            }
            var idle = _holding.Where(s => s.Job is null && s != sequence).MinBy(s => s.LastStep);
            if (idle is not null) { ReleaseAll(idle); _preemptions++; continue; }
            // Younger jobs give theirs back, running or waiting (a preempted job may still hold a prefix), never one
            // already in this step: its rows are being written.
            var victim = _running.Concat(_waiting)
                .Where(j => j != job && j.Order > job.Order && j.Sequence.Blocks.Count > 0 && !_plan.Exists(p => p.Job == j))
                .MaxBy(j => j.Order);
            if (victim is null) break;
            Preempt(victim);
        }
        int room = sequence.Blocks.Count * bt - sequence.Computed;
        return Math.Max(0, Math.Min(count, room));
    }

    /// <summary>A running job gives back all its blocks and waits to be computed again.</summary>
    void Preempt(GenerationJob job)
    {
        ReleaseAll(job.Sequence);
        if (_running.Remove(job)) InsertWaiting(job);
        _preemptions++;
    }

    void InsertWaiting(GenerationJob job)
    {
        int at = _waiting.FindIndex(j => j.Order > job.Order);
        _waiting.Insert(at < 0 ? _waiting.Count : at, job);
    }

    void InsertRunning(GenerationJob job)
    {
        int at = _running.FindIndex(j => j.Order > job.Order);
        _running.Insert(at < 0 ? _running.Count : at, job);
    }

    /// <summary>After a step: the computed positions move on, newly full blocks join the prefix cache, and every job
    /// whose last token was in the step samples its next one.</summary>
    void Advance()
    {
        int vocab = _network.Config.VocabSize;
        int logitRow = 0;
        long step = Interlocked.Read(ref _step);
        foreach (var (job, from, count) in _plan)
        {
            var sequence = job.Sequence;
            bool wantsLogits = from + count == sequence.Tokens.Count;
            var logits = wantsLogits ? _logits.AsSpan(logitRow++ * vocab, vocab) : default;
            if (job.Finished || sequence.Job != job) continue; // cancelled or failed while the step ran
            sequence.Computed = from + count;
            sequence.LastStep = step;
            Publish(sequence);
            if (wantsLogits)
            {
                try { Sample(job, logits); }
                catch (Exception e) { Fail(job, e); }
            }
        }
    }

    /// <summary>Names the sequence's newly completed blocks, so other sequences can reuse them.</summary>
    void Publish(KvSequence sequence)
    {
        if (sequence.Unshared) return;
        int bt = _store.BlockTokens;
        while ((sequence.Names.Count + 1) * bt <= sequence.Computed)
        {
            int index = sequence.Names.Count;
            var tokens = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(sequence.Tokens).Slice(index * bt, bt);
            ulong parent = sequence.LastName;
            ulong name = KvBlockManager.Name(parent, tokens);
            _blocks.Publish(sequence.Blocks[index], parent, tokens, name);
            sequence.Names.Add(name);
        }
    }

    void Sample(GenerationJob job, Span<float> logits)
    {
        var sequence = job.Sequence;
        var tokenizer = _tokenizer();
        if (!job.PromptDone)
        {
            job.PromptDone = true;
            job.PromptTime = job.Watch.Elapsed;
            job.Watch.Restart();
            if (job.Limit == 0)
            {
                Emit(job, new GeneratedToken { Id = -1, Text = "", LogProbability = 0, FinishReason = FinishReason.MaxTokens, Timings = job.Timings() }, holds: false);
                Finish(job);
                return;
            }
        }
        job.LogitsTap?.Invoke(sequence.Computed - 1, logits.ToArray());
        var tokens = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(sequence.Tokens);
        int next = job.Sampler.Sample(logits, tokens[Math.Max(0, tokens.Length - job.PenaltyLastN)..]);
        float logProbability = LogProbability(logits, next, out float max, out float logSum);
        var options = job.Options;
        var alternatives = options.TopLogProbabilities > 0 ? TopAlternatives(logits, options.TopLogProbabilities, max, logSum, tokenizer) : [];

        if (!options.IgnoreEndOfGeneration && tokenizer.IsEndOfGeneration(next))
        {
            sequence.EndsWithYielded = false; // the end is not held: every token the sequence has was read by the model
            Emit(job, new GeneratedToken
            {
                Id = next, Text = job.Stops.Push(job.Decoder.Flush()).Emit + job.Stops.Flush(), LogProbability = logProbability,
                TopAlternatives = alternatives, IsEndOfGeneration = true, FinishReason = FinishReason.EndOfGeneration, Timings = job.Timings(),
            }, holds: false);
            Finish(job);
            return;
        }
        job.Generated++;
        var piece = job.Stops.Push(job.Decoder.Decode(tokenizer.TokenBytes(next, special: job.ShownSpecialTokens.Contains(next))));
        FinishReason? finish = piece.Stopped ? FinishReason.StopSequence
            : job.Generated >= job.Limit ? FinishReason.MaxTokens
            : sequence.Tokens.Count >= sequence.ContextLength ? FinishReason.ContextFull
            : null;
        string text = piece.Emit;
        if (finish is not null and not FinishReason.StopSequence) text += job.Stops.Push(job.Decoder.Flush()).Emit + job.Stops.Flush();
        // The token joins the sequence: the next step reads it, or the next generation does first thing.
        sequence.Tokens.Add(next);
        sequence.EndsWithYielded = true;
        Emit(job, new GeneratedToken
        {
            Id = next, Text = text, LogProbability = logProbability, TopAlternatives = alternatives,
            FinishReason = finish, Timings = finish is null ? null : job.Timings(),
        }, holds: true);
        if (finish is not null) Finish(job);
    }

    static void Emit(GenerationJob job, GeneratedToken token, bool holds)
    {
        if (holds) job.Written++;
        job.Output.Writer.TryWrite(token);
    }

    /// <summary>log softmax(logits)[token], and the max and log-sum-exp it used (for the alternatives).</summary>
    float LogProbability(ReadOnlySpan<float> logits, int token, out float max, out float logSum)
    {
        max = TensorPrimitives.Max(logits);
        TensorPrimitives.Subtract(logits, max, _scratch);
        TensorPrimitives.Exp(_scratch, _scratch);
        logSum = MathF.Log(TensorPrimitives.Sum(_scratch));
        return logits[token] - max - logSum;
    }

    static TokenAlternative[] TopAlternatives(ReadOnlySpan<float> logits, int count, float max, float logSum, ITokenizer tokenizer)
    {
        // A small insertion-sorted list: count is at most 20, so one pass over the vocabulary is the whole cost.
        count = Math.Min(count, logits.Length);
        var ids = new int[count];
        var values = new float[count];
        int filled = 0;
        for (int id = 0; id < logits.Length; id++)
        {
            float v = logits[id];
            if (filled == count && !(v > values[count - 1])) continue;
            int at = filled < count ? filled++ : count - 1;
            while (at > 0 && v > values[at - 1]) { values[at] = values[at - 1]; ids[at] = ids[at - 1]; at--; }
            values[at] = v; ids[at] = id;
        }
        var result = new TokenAlternative[filled];
        for (int i = 0; i < filled; i++) result[i] = new TokenAlternative(ids[i], tokenizer.PieceText(ids[i]), values[i] - max - logSum);
        return result;
    }

    void Finish(GenerationJob job) => End(job, null);

    void Fail(GenerationJob job, Exception error)
    {
        if (job.Finished) return;
        var sequence = job.Sequence;
        // Whatever the failed step wrote is not counted: keep what was computed before it.
        int keep = Math.Min(sequence.Tokens.Count, Math.Max(sequence.Computed, job.PromptDone ? job.GeneratedStart + job.Read : 0));
        Truncate(sequence, keep);
        sequence.EndsWithYielded = job.PromptDone && job.Read > 0 && keep == job.GeneratedStart + job.Read && sequence.Computed < keep;
        End(job, error);
    }

    void End(GenerationJob job, Exception? error)
    {
        if (job.Finished) return;
        job.Finished = true;
        _running.Remove(job);
        _waiting.Remove(job);
        if (job.Sequence.Job == job) job.Sequence.Job = null;
        job.Failure = error;
        job.Output.Writer.TryComplete();
        job.Done.TrySetResult();
    }

    /// <summary>Cuts the sequence to its first `keep` tokens, and its cache with it. A block that would be written again
    /// but is in the prefix cache (it is named: other sequences may read it) is copied first.</summary>
    void Truncate(KvSequence sequence, int keep)
    {
        keep = Math.Clamp(keep, 0, sequence.Tokens.Count);
        sequence.Tokens.RemoveRange(keep, sequence.Tokens.Count - keep);
        int bt = _store.BlockTokens;
        int computed = Math.Min(sequence.Computed, keep);
        int partial = computed / bt;
        if (computed % bt != 0 && partial < sequence.Blocks.Count && _blocks.IsNamed(sequence.Blocks[partial]))
        {
            // The block's first positions stay, the rest is written anew: in a copy, so the sequences that share the
            // block (it is in the prefix cache) keep reading what they computed. Without a free block, recompute them.
            if (_blocks.TryAllocate(out int copy))
            {
                _copies.Add((sequence.Blocks[partial], copy));
                sequence.Blocks[partial] = copy;
            }
            else computed = partial * bt;
        }
        sequence.Computed = computed;
        int blocks = (computed + bt - 1) / bt;
        for (int i = sequence.Blocks.Count - 1; i >= blocks; i--) _blocks.Release(sequence.Blocks[i]);
        if (sequence.Blocks.Count > blocks) sequence.Blocks.RemoveRange(blocks, sequence.Blocks.Count - blocks);
        if (sequence.Names.Count > computed / bt) sequence.Names.RemoveRange(computed / bt, sequence.Names.Count - computed / bt);
        if (sequence.Blocks.Count == 0) _holding.Remove(sequence);
    }

    void ReleaseAll(KvSequence sequence)
    {
        foreach (var block in sequence.Blocks) _blocks.Release(block);
        sequence.Blocks.Clear();
        sequence.Names.Clear();
        sequence.Computed = 0;
        _holding.Remove(sequence);
    }

    public void Dispose()
    {
        lock (_gate) _stopping = true;
        _wake.Set();
        if (Thread.CurrentThread != _thread) _thread.Join();
        _wake.Dispose();
    }
}
