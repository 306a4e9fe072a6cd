using BenchmarkDotNet.Attributes;
using Engine.Formats;
using Engine.Quantization;

namespace Engine.Perf;

/// <summary>One weight matrix times one activation vector (the decode step), single thread, per weight type:
/// the fast kernel against the scalar reference. Weights are random and quantized with our own quantizer
/// (speed does not depend on the values).</summary>
[MemoryDiagnoser]
public unsafe class MatVecBenchmarks
{
    [Params(GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1,
            GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.IQ4_NL, GgmlType.IQ4_XS)]
    public GgmlType Type;

    [Params(2048)] public int Rows;
    [Params(2048)] public int Cols;

    IRowFormat _format = null!;
    byte[] _weights = [], _activations = [];
    float[] _y = [];
    long _rowBytes;

    [GlobalSetup]
    public void Setup()
    {
        _format = RowFormats.For(Type);
        _weights = RandomWeights.Quantized(Type, Rows, Cols, out _rowBytes);
        var x = RandomWeights.Floats(Cols, seed: 7);
        _activations = new byte[_format.ActivationBytes(Cols)];
        _format.QuantizeActivations(x, _activations);
        _y = new float[Rows];
    }

    [Benchmark(Baseline = true)]
    public float Reference()
    {
        for (int r = 0; r < Rows; r++)
            _y[r] = _format.DotRowReference(_weights.AsSpan((int)(r * _rowBytes), (int)_rowBytes), _activations, Cols);
        return _y[0];
    }

    [Benchmark]
    public float Fast()
    {
        RowFormats.MatVecRows(_format, _weights, _rowBytes, Cols, _activations, _y, 0, Rows);
        return _y[0];
    }
}
