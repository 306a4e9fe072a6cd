namespace Engine.Backends.Cpu;

/// <summary>Splits [0, count) into one contiguous range per worker and runs them on the thread pool.
/// Contiguous ranges keep each core on its own rows of a weight matrix, and each worker has an index so it
/// can use scratch memory allocated once per backend.</summary>
public sealed class WorkSplit
{
    public int Workers { get; }
    readonly ParallelOptions _options;

    public WorkSplit(int workers)
    {
        Workers = Math.Max(1, workers);
        _options = new ParallelOptions { MaxDegreeOfParallelism = Workers };
    }

    /// <summary>Runs body(start, end, worker) over [0, count), in ranges no smaller than minChunk.</summary>
    public void For(int count, int minChunk, Action<int, int, int> body)
    {
        if (count <= 0) return;
        int chunks = Math.Clamp(count / Math.Max(1, minChunk), 1, Workers);
        if (chunks == 1) { body(0, count, 0); return; }
        Parallel.For(0, chunks, _options, worker =>
        {
            int start = (int)((long)count * worker / chunks);
            int end = (int)((long)count * (worker + 1) / chunks);
            body(start, end, worker);
        });
    }
}
