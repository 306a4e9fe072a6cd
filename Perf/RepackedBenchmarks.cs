using BenchmarkDotNet.Attributes;
using Engine.Backends.Cpu;
using Engine.Formats;
using Engine.Quantization;
using Engine.Quantization.Repacked;

namespace Engine.Perf;

/// <summary>The decode matmul of one Q4_K or Q6_K matrix (k = 4096 columns), the row kernels reading the file
/// layout against the 8-row kernels reading the repacked copy, on 1 and 2 threads of a WorkSplit (as the CPU
/// backend runs them). 256 rows (576 KB of Q4_K, 840 KB of Q6_K) stay in cache; 14336 rows (the FFN of
/// Llama-3-8B, 33 / 48 MB) come from memory. GB/s of weights = Rows * row bytes (2304 / 3360) / the mean time.
///   dotnet run -c Release --project Perf -- --filter '*RepackedBenchmarks*'</summary>
[GenericTypeArguments(typeof(Q4_Kx8))]
[GenericTypeArguments(typeof(Q6_Kx8))]
public unsafe class RepackedBenchmarks<TLayout> where TLayout : RepackedMatrix<TLayout>, IRepackedLayout
{
    static RowFormat Format => TLayout.Source;

    const int Cols = 4096;
    [Params(256, 14336)] public int Rows;
    [Params(1, 2)] public int Threads;

    WorkSplit _split = null!;
    readonly RowsWork _rows = new();
    readonly GroupsWork _groups = new();

    [GlobalSetup]
    public void Setup()
    {
        var format = Format;
        var weights = RandomWeights.Quantized(format.Type, Rows, Cols, out long rowBytes);
        var packed = new byte[RepackedMatrix<TLayout>.PackedBytes(Rows, Cols)];
        RepackedMatrix<TLayout>.Repack(weights, rowBytes, Rows, Cols, packed);
        var act = new byte[format.ActivationBytes(Cols)];
        format.QuantizeActivations(RandomWeights.Floats(Cols, seed: 7), act);
        _rows.Weights = weights; _rows.RowBytes = rowBytes; _rows.Act = act; _rows.Y = new float[Rows];
        _groups.Packed = packed; _groups.Act = act; _groups.Y = new float[Rows];
        _split = new WorkSplit(Threads);
    }

    [GlobalCleanup]
    public void Cleanup() => _split.Dispose();

    [Benchmark(Baseline = true)]
    public float RowKernels()
    {
        _split.For(Rows, 16, _rows);
        return _rows.Y[0];
    }

    [Benchmark]
    public float Repacked()
    {
        _split.For(Rows / 8, 2, _groups);
        return _groups.Y[0];
    }

    sealed class RowsWork : IRangeWork
    {
        public byte[] Weights = [], Act = []; public long RowBytes; public float[] Y = [];
        public void Execute(int start, int end, int worker) =>
            RowFormats.MatVecRows(Format, Weights, RowBytes, Cols, Act, Y, start, end);
    }

    sealed class GroupsWork : IRangeWork
    {
        public byte[] Packed = [], Act = []; public float[] Y = [];
        public void Execute(int start, int end, int worker) => RepackedMatrix<TLayout>.MatVec(Packed, Cols, Act, Y, start, end);
    }
}
