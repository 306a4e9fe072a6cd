using BenchmarkDotNet.Attributes;
using Engine.Formats;
using Engine.Quantization;

namespace Engine.Perf;

/// <summary>Prompt processing: one weight matrix times 32 tokens, single thread. The baseline multiplies token by
/// token with the decode kernel; the batched kernel decodes each weight block once for four tokens.</summary>
public unsafe class MatMulBenchmarks
{
    [Params(GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q5_0, GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.BF16)]
    public GgmlType Type;

    const int Rows = 1024, Cols = 2048, Tokens = 32;
    IRowFormat _format = null!;
    byte[] _weights = [], _activations = [];
    float[] _y = [];
    long _rowBytes;
    int _actBytes;

    [GlobalSetup]
    public void Setup()
    {
        _format = RowFormats.For(Type);
        _weights = RandomWeights.Quantized(Type, Rows, Cols, out _rowBytes);
        _actBytes = _format.ActivationBytes(Cols);
        _activations = new byte[_actBytes * Tokens];
        for (int t = 0; t < Tokens; t++)
            _format.QuantizeActivations(RandomWeights.Floats(Cols, seed: 100 + t), _activations.AsSpan(t * _actBytes, _actBytes));
        _y = new float[Rows * Tokens];
    }

    [Benchmark(Baseline = true)]
    public float TokenByToken()
    {
        for (int t = 0; t < Tokens; t++)
            RowFormats.MatVecRows(_format, _weights, _rowBytes, Cols, _activations.AsSpan(t * _actBytes, _actBytes), _y.AsSpan(t * Rows, Rows), 0, Rows);
        return _y[0];
    }

    [Benchmark]
    public float Batched()
    {
        fixed (byte* w = _weights)
            RowFormats.MatMulRows(_format, w, _rowBytes, Cols, _activations, _actBytes, Tokens, _y, Rows, 0, Rows);
        return _y[0];
    }
}
