using BenchmarkDotNet.Attributes;
using Engine.Backends.Cpu;
using Engine.Formats;
using Engine.Quantization;
using Engine.Quantization.Repacked;

namespace Engine.Perf;

/// <summary>The decode matmul of one Q4_K or Q6_K matrix (k = 4096 columns), the row kernels reading the file
/// layout against the 8- and 16-row kernels reading the repacked copies, on 1 and 2 threads of a WorkSplit (as the CPU
/// backend runs them). 256 rows (576 KB of Q4_K, 840 KB of Q6_K) stay in cache; 14336 rows (the FFN of
/// Llama-3-8B, 33 / 48 MB) come from memory. GB/s of weights = Rows * row bytes (2304 / 3360) / the mean time.
///   dotnet run -c Release --project Perf -- --filter '*RepackedBenchmarks*'
/// The layout is a name, not a type argument: the layouts are internal to the engine, and BenchmarkDotNet's generated
/// project can only name public types.</summary>
public unsafe class RepackedBenchmarks
{
    const int Cols = 4096;
    [Params(nameof(Q4_Kx8), nameof(Q4_Kx16), nameof(Q6_Kx8), nameof(Q6_Kx16))] public string Layout = "";
    [Params(256, 14336)] public int Rows;
    [Params(1, 2)] public int Threads;

    WorkSplit _split = null!;
    RowsWork _rows = null!;
    IRangeWork _groups = null!;
    float[] _groupsY = [];
    int _groupRows;

    [GlobalSetup]
    public void Setup()
    {
        (_rows, _groups, _groupsY, _groupRows) = Layout switch
        {
            nameof(Q4_Kx8) => Prepare<Q4_Kx8>(Rows),
            nameof(Q4_Kx16) => Prepare<Q4_Kx16>(Rows),
            nameof(Q6_Kx8) => Prepare<Q6_Kx8>(Rows),
            nameof(Q6_Kx16) => Prepare<Q6_Kx16>(Rows),
            _ => throw new ArgumentException($"unknown repacked layout '{Layout}': use {nameof(Q4_Kx8)}, {nameof(Q4_Kx16)}, {nameof(Q6_Kx8)} or {nameof(Q6_Kx16)}"),
        };
        _split = new WorkSplit(Threads);
    }

    /// <summary>The same random matrix for both kernels: as the file stores it, and repacked into 8-row groups.</summary>
    static (RowsWork Rows, IRangeWork Groups, float[] GroupsY, int GroupRows) Prepare<TLayout>(int rows) where TLayout : RepackedMatrix<TLayout>, IRepackedLayout
    {
        var format = TLayout.Source;
        var weights = RandomWeights.Quantized(format.Type, rows, Cols, out long rowBytes);
        var packed = new byte[RepackedMatrix<TLayout>.PackedBytes(rows, Cols)];
        RepackedMatrix<TLayout>.Repack(weights, rowBytes, rows, Cols, packed);
        var act = new byte[format.ActivationBytes(Cols)];
        format.QuantizeActivations(RandomWeights.Floats(Cols, seed: 7), act);
        var groupsY = new float[rows];
        return (new RowsWork { Format = format, Weights = weights, RowBytes = rowBytes, Act = act, Y = new float[rows] },
                new GroupsWork<TLayout> { Packed = packed, Act = act, Y = groupsY }, groupsY, TLayout.GroupRows);
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
        _split.For(Rows / _groupRows, 16 / _groupRows, _groups);
        return _groupsY[0];
    }

    sealed class RowsWork : IRangeWork
    {
        public RowFormat Format = null!;
        public byte[] Weights = [], Act = []; public long RowBytes; public float[] Y = [];
        public void Execute(int start, int end, int worker) =>
            RowFormats.MatVecRows(Format, Weights, RowBytes, Cols, Act, Y, start, end);
    }

    sealed class GroupsWork<TLayout> : IRangeWork where TLayout : RepackedMatrix<TLayout>, IRepackedLayout
    {
        public byte[] Packed = [], Act = []; public float[] Y = [];
        public void Execute(int start, int end, int worker) => RepackedMatrix<TLayout>.MatVec(Packed, Cols, Act, Y, start, end);
    }
}
