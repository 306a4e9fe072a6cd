using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Engine.Benchmarking;

/// <summary>Measures how fast this machine streams memory into the cores: every worker sums its share of a
/// buffer far larger than the caches, best of a few passes. The decode ceiling of a model is this figure
/// divided by the bytes of weights it reads per token.</summary>
internal static unsafe class MemoryBandwidth
{
    public static double MeasureBytesPerSecond(int threads, long bufferBytes = 512L << 20, int passes = 4)
    {
        threads = Math.Max(1, threads);
        nuint size = (nuint)bufferBytes;
        var buffer = (byte*)NativeMemory.AlignedAlloc(size, 64);
        try
        {
            NativeMemory.Fill(buffer, size, 1); // touch every page so the measurement reads RAM, not page faults
            double best = 0;
            for (int pass = 0; pass < passes; pass++)
            {
                var watch = Stopwatch.StartNew();
                Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, worker =>
                {
                    long start = bufferBytes * worker / threads / 64 * 64;
                    long end = bufferBytes * (worker + 1) / threads / 64 * 64;
                    SumRange(buffer + start, end - start);
                });
                best = Math.Max(best, bufferBytes / watch.Elapsed.TotalSeconds);
            }
            return best;
        }
        finally { NativeMemory.AlignedFree(buffer); }
    }

    static int SumRange(byte* p, long length)
    {
        var a0 = Vector256<int>.Zero; var a1 = Vector256<int>.Zero;
        var a2 = Vector256<int>.Zero; var a3 = Vector256<int>.Zero;
        long i = 0;
        for (; i + 128 <= length; i += 128)
        {
            a0 += Vector256.Load((int*)(p + i));
            a1 += Vector256.Load((int*)(p + i + 32));
            a2 += Vector256.Load((int*)(p + i + 64));
            a3 += Vector256.Load((int*)(p + i + 96));
        }
        return Vector256.Sum(a0 + a1 + a2 + a3);
    }
}
