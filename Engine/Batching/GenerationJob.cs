using System.Diagnostics;
using System.Threading.Channels;
using Engine.Sampling;
using Engine.Text;

namespace Engine.Batching;

/// <summary>
/// One generation request in the scheduler: its sequence, its own sampler, stop strings and limits, and the stream its
/// tokens go out on. The scheduler thread fills the stream; the caller's enumerator reads it and counts what it has
/// read, and the scheduler runs a job at most two tokens ahead of its reader, so an abandoned stream costs at most
/// that and a cancelled one leaves the sequence holding exactly the tokens its reader saw.
/// </summary>
internal sealed class GenerationJob
{
    public GenerationJob(KvSequence sequence, GenerateOptions options, SamplerOptions sampling, IReadOnlyList<string> templateStops, int vocabulary)
    {
        Sequence = sequence;
        Options = options;
        Sampler = new Sampler(sampling, vocabulary);
        PenaltyLastN = sampling.PenaltyLastN;
        Stops = new StopStrings(options.StopSequences, templateStops);
        Limit = options.MaxTokens ?? int.MaxValue;
    }

    public KvSequence Sequence { get; }
    public GenerateOptions Options { get; }
    public Sampler Sampler { get; }
    public int PenaltyLastN { get; }
    public StopStrings Stops { get; }
    public Utf8StreamDecoder Decoder { get; } = new();
    /// <summary>Control tokens whose text is part of the output (tool-call markers), where others give no text.</summary>
    public IReadOnlySet<int> ShownSpecialTokens { get; init; } = System.Collections.Frozen.FrozenSet<int>.Empty;
    public int Limit { get; }
    public Channel<GeneratedToken> Output { get; } = Channel.CreateUnbounded<GeneratedToken>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    /// <summary>Completed once the scheduler is done with the job (finished, cancelled or failed) and the sequence is
    /// consistent again; a new generation on the same sequence waits for it.</summary>
    public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Admission order: the oldest running job is the last to be preempted.</summary>
    public long Order;
    public bool Admitted;
    /// <summary>Where this request's prompt starts and its generated tokens start in Sequence.Tokens.</summary>
    public int PromptStart, GeneratedStart;
    /// <summary>Prompt tokens the job computes, and those the cache already held (the session's own, or the prefix
    /// cache's), counted when it is admitted.</summary>
    public int PromptTokens, CachedTokens;
    public int Generated;
    /// <summary>Tokens written to the stream that the sequence holds (every generated token but an end of generation).</summary>
    public int Written;
    int _read;
    /// <summary>Tokens the reader has taken.</summary>
    public int Read => Volatile.Read(ref _read);
    public void CountRead() => Interlocked.Increment(ref _read);
    public int Unread => Written - Read;
    public volatile bool CancelRequested;
    /// <summary>Why the job ended early (cancelled, failed, its session disposed); null when it finished. The stream
    /// ends first, then the reader throws this.</summary>
    public Exception? Failure;
    public bool Finished;

    public readonly Stopwatch Watch = new();
    public TimeSpan PromptTime;
    public bool PromptDone;

    /// <summary>Tests: every logits row the job samples from, with the position it was computed at.</summary>
    public Action<int, float[]>? LogitsTap;

    public GenerationTimings Timings() =>
        new(PromptTokens, PromptTime, Generated, PromptDone ? Watch.Elapsed : TimeSpan.Zero, CachedTokens);
}
