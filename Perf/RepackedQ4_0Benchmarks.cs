using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using Engine.Backends.Cpu;
using Engine.Formats;
using Engine.Quantization;
using Engine.Quantization.Repacked;

namespace Engine.Perf;

/// <summary>The matmul of one Q4_0 matrix (k = 4096 columns), the row kernels reading the file layout against
/// the 8-row kernels reading the repacked copy, on 1 and 2 threads of a WorkSplit (as the CPU backend runs them),
/// for one token (decode) and 16 (a prompt). 256 rows (576 KB) stay in cache; 14336 rows (the FFN of
/// Llama-3-8B, 33 MB) come from memory. GB/s of weights = Rows * 2304 bytes * (1 pass) / the mean time.
///   dotnet run -c Release --project Perf -- --filter '*RepackedQ4_0*'
/// A quicker Stopwatch harness (best of 7 per case, GB/s printed): dotnet run -c Release --project Perf -- repacked-q4_0</summary>
public unsafe class RepackedQ4_0Benchmarks
{
    const int Cols = 4096;
    [Params(256, 14336)] public int Rows;
    [Params(1, 2)] public int Threads;
    [Params(1, 16)] public int Tokens;

    readonly Case _case = new();

    [GlobalSetup]
    public void Setup() => _case.Setup(Rows, Threads, Tokens);

    [GlobalCleanup]
    public void Cleanup() => _case.Split.Dispose();

    [Benchmark(Baseline = true)]
    public float RowKernels() => _case.RowKernels();

    [Benchmark]
    public float Repacked() => _case.Repacked();

    /// <summary>One shape: the source rows, their repacked copy, activations and the two ways to multiply.</summary>
    sealed class Case
    {
        public WorkSplit Split = null!;
        readonly RowsWork _rows = new();
        readonly GroupsWork _groups = new();
        int _rowCount;

        public void Setup(int rows, int threads, int tokens)
        {
            var format = Q4_0Format.Instance;
            var weights = RandomWeights.Quantized(GgmlType.Q4_0, rows, Cols, out long rowBytes);
            var packed = new byte[Q4_0x8.PackedBytes(rows, Cols)];
            Q4_0x8.Repack(weights, rowBytes, rows, Cols, packed);
            int actBytes = format.ActivationBytes(Cols);
            var act = new byte[actBytes * tokens];
            for (int t = 0; t < tokens; t++)
                format.QuantizeActivations(RandomWeights.Floats(Cols, seed: 7 + t), act.AsSpan(t * actBytes, actBytes));
            _rows.Weights = weights; _rows.RowBytes = rowBytes; _rows.Act = act; _rows.ActBytes = actBytes; _rows.Tokens = tokens; _rows.N = rows; _rows.Y = new float[rows * tokens];
            _groups.Packed = packed; _groups.Act = act; _groups.ActBytes = actBytes; _groups.Tokens = tokens; _groups.N = rows; _groups.Y = new float[rows * tokens];
            _rowCount = rows;
            Split = new WorkSplit(threads);
        }

        public float RowKernels()
        {
            Split.For(_rowCount, 16, _rows);
            return _rows.Y[0];
        }

        public float Repacked()
        {
            Split.For(_rowCount / 8, 2, _groups);
            return _groups.Y[0];
        }
    }

    sealed class RowsWork : IRangeWork
    {
        public byte[] Weights = [], Act = []; public long RowBytes; public int ActBytes, Tokens, N; public float[] Y = [];
        public void Execute(int start, int end, int worker)
        {
            if (Tokens == 1) RowFormats.MatVecRows(Q4_0Format.Instance, Weights, RowBytes, Cols, Act, Y, start, end);
            else fixed (byte* w = Weights) RowFormats.MatMulRows(Q4_0Format.Instance, w, RowBytes, Cols, Act, ActBytes, Tokens, Y, N, start, end);
        }
    }

    sealed class GroupsWork : IRangeWork
    {
        public byte[] Packed = [], Act = []; public int ActBytes, Tokens, N; public float[] Y = [];
        public void Execute(int start, int end, int worker)
        {
            if (Tokens == 1) Q4_0x8.MatVec(Packed, Cols, Act, Y, start, end);
            else Q4_0x8.MatMul(Packed, N, Cols, Act, Tokens, Y, start, end);
        }
    }

    /// <summary>The quick harness: each case timed as the best of 7 runs of enough calls for ~50 ms.</summary>
    public static void Quick()
    {
        foreach (var (rows, threads, tokens) in new[] { (256, 1, 1), (57344, 1, 1), (57344, 2, 1), (256, 1, 16), (4096, 2, 16) })
        {
            var c = new Case();
            c.Setup(rows, threads, tokens);
            double bytes = (double)rows * Q4_0Format.Instance.RowBytes(Cols);
            double Best(Func<float> f)
            {
                f();
                var sw = Stopwatch.StartNew();
                int calls = 0;
                while (sw.ElapsedMilliseconds < 20) { f(); calls++; }
                double best = double.MaxValue;
                for (int r = 0; r < 7; r++)
                {
                    sw.Restart();
                    for (int i = 0; i < calls; i++) f();
                    best = Math.Min(best, sw.Elapsed.TotalSeconds / calls);
                }
                return bytes / best / 1e9;
            }
            double old = Best(c.RowKernels), repacked = Best(c.Repacked);
            Console.WriteLine($"{rows,6} rows x {Cols}, {threads} thread(s), {tokens,2} token(s): row kernels {old,6:F1} GB/s, repacked {repacked,6:F1} GB/s ({repacked / old:F2}x)");
            c.Split.Dispose();
        }
    }
}
