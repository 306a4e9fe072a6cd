namespace Engine.Backends.Cpu;

/// <summary>A piece of parallel work over an index range. Implemented by small reusable job objects so that
/// dispatching an operation allocates nothing (a lambda capturing locals would allocate a closure per call).</summary>
internal interface IRangeWork
{
    void Execute(int start, int end, int worker);
}

/// <summary>Splits [0, count) into one contiguous range per worker and runs them on a team of threads that
/// lives as long as the backend. Contiguous ranges keep each core on its own rows of a weight matrix, and each
/// worker has an index so it can use scratch memory allocated once per backend.
///
/// Why not Parallel.For: a decode step issues hundreds of small operations, and the thread pool's scheduling
/// costs (queueing, work stealing, a closure per call) are a visible share of a small model's time. Here the
/// calling thread is worker 0; the others watch a shared operation counter, spinning for up to
/// <see cref="SpinBeforeSleep"/> after their last piece of work before they sleep on their own semaphore, and
/// the caller spins for the stragglers, yielding if it waits long. Nothing is allocated per operation.
///
/// Why spin that long: a decode step is a few hundred operations a few microseconds apart. A worker that
/// sleeps between them must be woken through the kernel, and on a virtual machine waking a halted vCPU costs
/// from tens to hundreds of microseconds, which measured as a 10-40% slower, very noisy generation rate.
/// llama.cpp's threads poll for the same reason.</summary>
internal sealed class WorkSplit : IDisposable
{
    public int Workers { get; }

    /// <summary>How long an idle worker polls for the next operation before it sleeps.</summary>
    public static readonly TimeSpan SpinBeforeSleep = TimeSpan.FromMilliseconds(2);
    static readonly long SpinTicks = (long)(SpinBeforeSleep.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);

    readonly Thread[] _threads;
    readonly SemaphoreSlim[] _wake;
    readonly int[] _sleeping; // 1 while worker i+1 is asleep (or about to be) on _wake[i]
    IRangeWork? _work;
    int _count, _chunks;
    int _pending;
    int _operation; // incremented once per dispatched operation; workers watch it
    Exception? _failure; // the first exception a worker threw during the current operation
    volatile bool _disposed;
    readonly Lock _dispatch = new();
    readonly Action? _workerStarting;

    public WorkSplit(int workers) : this(workers, null) { }

    /// <param name="workers">Threads in the team, the caller included.</param>
    /// <param name="workerStarting">Tests: runs on each worker thread before it first looks at the operation counter.</param>
    internal WorkSplit(int workers, Action? workerStarting)
    {
        _workerStarting = workerStarting;
        Workers = Math.Max(1, workers);
        _threads = new Thread[Workers - 1];
        _wake = new SemaphoreSlim[Workers - 1];
        _sleeping = new int[Workers - 1];
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
            Interlocked.Increment(ref _operation); // a full fence: the fields above are visible to whoever sees it
            for (int w = 1; w < chunks; w++)
                if (Volatile.Read(ref _sleeping[w - 1]) == 1) _wake[w - 1].Release();
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
        _workerStarting?.Invoke();
        // The counter's value when the team was made, not when this thread first runs: an operation dispatched before
        // the thread got a core would otherwise look already seen, and its caller would wait for it forever.
        int seen = 0;
        while (true)
        {
            int operation = WaitForOperation(worker, wake, seen);
            seen = operation;
            if (_disposed) return;
            if (worker >= Volatile.Read(ref _chunks)) continue; // this operation is split over fewer workers
            try { RunChunk(worker); }
            catch (Exception e) { Interlocked.CompareExchange(ref _failure, e, null); }
            finally { Interlocked.Decrement(ref _pending); }
        }
    }

    /// <summary>Polls the operation counter, then sleeps; returns the new operation's number. The sleeping flag
    /// is raised before the last look at the counter and the dispatcher reads it after advancing the counter,
    /// so either the worker sees the new operation or the dispatcher sees it asleep and wakes it. A wake-up
    /// left over from an operation the worker had already seen only sends it round the loop once more.</summary>
    int WaitForOperation(int worker, SemaphoreSlim wake, int seen)
    {
        while (true)
        {
            long deadline = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
            do
            {
                for (int i = 0; i < 64; i++)
                {
                    int operation = Volatile.Read(ref _operation);
                    if (operation != seen || _disposed) return operation;
                    Thread.SpinWait(1);
                }
                // Stay awake but let any other runnable thread have this core: on a busy machine a pure spin took
                // a core from the threads doing the work (a tiny model decoded 4-5x slower under load, also with
                // only the first 50 microseconds spent in a pure spin). With nothing else to run, it returns at once.
                Thread.Yield();
            } while (System.Diagnostics.Stopwatch.GetTimestamp() < deadline);

            Interlocked.Exchange(ref _sleeping[worker - 1], 1);
            int now = Volatile.Read(ref _operation);
            if (now == seen && !_disposed) wake.Wait();
            Interlocked.Exchange(ref _sleeping[worker - 1], 0);
            now = Volatile.Read(ref _operation);
            if (now != seen || _disposed) return now;
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Interlocked.Increment(ref _operation);
        foreach (var s in _wake) s.Release();
        foreach (var t in _threads) t.Join();
        foreach (var s in _wake) s.Dispose();
    }
}
