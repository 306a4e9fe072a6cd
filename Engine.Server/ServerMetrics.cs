using System.Diagnostics.Metrics;
using Prometheus;

namespace Engine.Server;

/// <summary>The server's measurements as System.Diagnostics.Metrics instruments (so any OpenTelemetry or dotnet-counters
/// listener sees them too), exported at /metrics in Prometheus text by prometheus-net from a registry of this server's
/// own. The meter is named "engine", which prometheus-net puts before each instrument's name (engine_requests_running):
/// requests by route and status, prompt and generated tokens, time to first token and inter-token latency,
/// running and waiting sequences, KV blocks in use and prefix-cache hits.</summary>
internal sealed class ServerMetrics : IDisposable
{
    readonly Meter _meter = new("engine");
    readonly IDisposable _adapter;
    readonly Counter<long> _requests, _promptTokens, _generatedTokens;
    readonly Histogram<double> _timeToFirstToken, _interTokenLatency;

    public CollectorRegistry Registry { get; } = Prometheus.Metrics.NewCustomRegistry();

    public ServerMetrics(ModelCatalog catalog)
    {
        _requests = _meter.CreateCounter<long>("http_requests", description: "HTTP requests by route and status");
        _promptTokens = _meter.CreateCounter<long>("prompt_tokens", description: "prompt tokens processed (cached ones not counted)");
        _generatedTokens = _meter.CreateCounter<long>("generated_tokens", description: "tokens generated");
        _timeToFirstToken = _meter.CreateHistogram<double>("time_to_first_token_seconds", "s", "time from a request's arrival to its first generated token");
        _interTokenLatency = _meter.CreateHistogram<double>("inter_token_latency_seconds", "s", "time between consecutive generated tokens of a request");
        IEnumerable<KvCacheStatistics> Stats() => catalog.All.Select(e => e.Loaded).Where(m => m is not null).Select(m => m!.KvCacheStatistics);
        _meter.CreateObservableGauge("requests_running", () => Stats().Sum(s => s.RunningRequests), description: "sequences generating");
        _meter.CreateObservableGauge("requests_waiting", () => Stats().Sum(s => s.WaitingRequests), description: "sequences waiting for KV blocks");
        _meter.CreateObservableGauge("kv_blocks_used", () => Stats().Sum(s => s.BlocksInUse), description: "KV cache blocks held by sequences");
        _meter.CreateObservableGauge("kv_blocks", () => Stats().Sum(s => s.Blocks), description: "KV cache blocks in the pools");
        _meter.CreateObservableCounter("prefix_cache_hit_tokens", () => Stats().Sum(s => s.PrefixCacheHitTokens), description: "prompt tokens found in the prefix cache");
        _meter.CreateObservableCounter("prefix_cache_lookup_tokens", () => Stats().Sum(s => s.PrefixCacheLookupTokens), description: "prompt tokens looked up in the prefix cache");
        _meter.CreateObservableGauge("models_loaded", () => catalog.All.Count(e => e.Loaded is not null), description: "models in memory");
        var meter = _meter;
        _adapter = MeterAdapter.StartListening(new MeterAdapterOptions
        {
            Registry = Registry,
            MetricFactory = Prometheus.Metrics.WithCustomRegistry(Registry),
            InstrumentFilterPredicate = instrument => ReferenceEquals(instrument.Meter, meter),
            ResolveHistogramBuckets = _ => [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        });
    }

    public void Request(string route, int status) =>
        _requests.Add(1, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("status", status.ToString(System.Globalization.CultureInfo.InvariantCulture)));

    /// <summary>Passes a request's generated tokens through, timing the first from the request's start and each next
    /// from the one before, and counting tokens when the last one carries the timings.</summary>
    public async IAsyncEnumerable<T> Measure<T>(IAsyncEnumerable<T> source, Func<T, GeneratedToken> token, System.Diagnostics.Stopwatch sinceArrival,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        TimeSpan? previous = null;
        await foreach (var item in source.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            var t = token(item);
            var now = sinceArrival.Elapsed;
            if (!t.IsEndOfGeneration)
            {
                if (previous is null) _timeToFirstToken.Record(now.TotalSeconds);
                else _interTokenLatency.Record((now - previous.Value).TotalSeconds);
                previous = now;
            }
            if (t.Timings is { } timings)
            {
                _promptTokens.Add(timings.PromptTokens);
                _generatedTokens.Add(timings.GeneratedTokens);
            }
            yield return item;
        }
    }

    public void Dispose()
    {
        _adapter.Dispose();
        _meter.Dispose();
    }
}
