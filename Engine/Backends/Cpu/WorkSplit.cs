namespace Engine.Backends.Cpu;

/// <summary>A piece of parallel work over an index range. Implemented by small reusable job objects so that
/// dispatching an operation allocates nothing (a lambda capturing locals would allocate a closure per call).</summary>
public interface IRangeWork
{
    void Execute(int start, int end, int worker);
}

/// <summary>Splits [0, count) into one contiguous range per worker and runs them on a team of threads that
/// lives as long as the backend. Contiguous ranges keep each core on its own rows of a weight matrix, and each
/// worker has an index so it can use scratch memory allocated once per backend.
///
/// Why not Parallel.For: a decode step issues hundreds of small operations, and the thread pool's scheduling
/// costs (queueing, work stealing, a closure per call) are a visible share of a small model's time. Here the
/// calling thread is worker 0, the others wait on their own semaphore (which spins briefly before sleeping,
/// so back-to-back operations find them awake), and the caller spins for the stragglers, yielding if it waits
/// long. Nothing is allocated per operation.</summary>
public sealed class WorkSplit : IDisposable
{
    public int Workers { get; }

    readonly Thread[] _threads;
    readonly SemaphoreSlim[] _wake;
    IRangeWork? _work;
    int _count, _chunks;
    int _pending;
    Exception? _failure; // the first exception a worker threw during the current operation
    volatile bool _disposed;
    readonly Lock _dispatch = new();

    public WorkSplit(int workers)
    {
        Workers = Math.Max(1, workers);
        _threads = new Thread[Workers - 1];
        _wake = new SemaphoreSlim[Workers - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            _wake[i] = new SemaphoreSlim(0);
            int worker = i + 1;
            _threads[i] = new Thread(() => WorkerLoop(worker)) { IsBackground = true, Name = $"engine-worker-{worker}" };
            _threads[i].Start();
        }
    }

    /// <summary>Runs work.Execute(start, end, worker) over [0, count), in ranges no smaller than minChunk.</summary>
    public void For<TWork>(int count, int minChunk, TWork work) where TWork : class, IRangeWork
    {
        if (count <= 0) return;
        int chunks = Math.Clamp(count / Math.Max(1, minChunk), 1, Workers);
        if (chunks == 1) { work.Execute(0, count, 0); return; }
        lock (_dispatch) // one operation at a time; the model issues them in sequence anyway
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _work = work;
            _count = count;
            _chunks = chunks;
            Volatile.Write(ref _pending, chunks - 1);
            for (int w = 1; w < chunks; w++) _wake[w - 1].Release();
            try
            {
                RunChunk(0);
            }
            finally
            {
                var spin = new SpinWait();
                while (Volatile.Read(ref _pending) != 0) spin.SpinOnce(sleep1Threshold: -1);
                _work = null;
            }
            if (_failure is { } failure)
            {
                _failure = null;
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
            }
        }
    }

    void RunChunk(int worker)
    {
        int start = (int)((long)_count * worker / _chunks);
        int end = (int)((long)_count * (worker + 1) / _chunks);
        _work!.Execute(start, end, worker);
    }

    void WorkerLoop(int worker)
    {
        var wake = _wake[worker - 1];
        while (true)
        {
            wake.Wait();
            if (_disposed) return;
            try { RunChunk(worker); }
            catch (Exception e) { Interlocked.CompareExchange(ref _failure, e, null); }
            finally { Interlocked.Decrement(ref _pending); }
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var s in _wake) s.Release();
        foreach (var t in _threads) t.Join();
        foreach (var s in _wake) s.Dispose();
    }
}
