using Engine.Backends.Cpu;

namespace Engine.Tests.Backends;

public class WorkSplitTests
{
    sealed class Recording(int count) : IRangeWork
    {
        public readonly int[] Hits = new int[count];
        public readonly HashSet<int> Workers = [];
        public void Execute(int start, int end, int worker)
        {
            lock (Workers) Workers.Add(worker);
            for (int i = start; i < end; i++) Interlocked.Increment(ref Hits[i]);
        }
    }

    sealed class Throwing : IRangeWork
    {
        public void Execute(int start, int end, int worker)
        {
            if (worker == 1) throw new InvalidOperationException("worker 1 failed");
        }
    }

    [Fact]
    public async Task An_operation_dispatched_before_the_workers_first_run_is_not_missed()
    {
        // The workers get a core only after the first dispatch: a worker that took the operation counter's value when
        // it first ran would skip that operation, and its caller would wait for it forever.
        var run = Task.Factory.StartNew(() =>
        {
            using var split = new WorkSplit(3, workerStarting: () => Thread.Sleep(200));
            var work = new Recording(64);
            split.For(64, 1, work);
            work.Hits.Should().OnlyContain(h => h == 1);
        }, TaskCreationOptions.LongRunning);
        (await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(10)))).Should().BeSameAs(run, "the first dispatch completes");
        await run;
    }

    [Theory]
    [InlineData(1, 100, 1)]
    [InlineData(3, 100, 1)]
    [InlineData(3, 7, 4)]
    [InlineData(4, 1, 1)]
    public void Every_index_runs_exactly_once(int workers, int count, int minChunk)
    {
        using var split = new WorkSplit(workers);
        for (int round = 0; round < 50; round++) // repeated dispatches reuse the same sleeping workers
        {
            var work = new Recording(count);
            split.For(count, minChunk, work);
            work.Hits.Should().OnlyContain(h => h == 1);
            work.Workers.Count.Should().BeLessThanOrEqualTo(Math.Min(workers, Math.Max(1, count / minChunk)));
        }
    }

    [Fact]
    public void A_worker_exception_reaches_the_caller_and_the_team_keeps_working()
    {
        using var split = new WorkSplit(2);
        var act = () => split.For(10, 1, new Throwing());
        act.Should().Throw<InvalidOperationException>().WithMessage("worker 1 failed");
        var work = new Recording(10);
        split.For(10, 1, work);
        work.Hits.Should().OnlyContain(h => h == 1);
    }

    [Fact]
    public void Dispatch_after_dispose_is_refused()
    {
        var split = new WorkSplit(2);
        split.Dispose();
        var act = () => split.For(10, 1, new Recording(10));
        act.Should().Throw<ObjectDisposedException>();
    }
}
