using BenchmarkDotNet.Attributes;
using Engine.Backends.Cpu;

namespace Engine.Perf;

/// <summary>The float kernels around the matmuls, fast path against the scalar reference.</summary>
public class FloatKernelBenchmarks
{
    [Params(896, 4096)] public int Width;
    float[] _x = [], _w = [], _y = [], _gate = [], _up = [];

    [GlobalSetup]
    public void Setup()
    {
        _x = RandomWeights.Floats(Width, 1); _w = RandomWeights.Floats(Width, 2); _y = new float[Width];
        _gate = RandomWeights.Floats(Width, 3); _up = RandomWeights.Floats(Width, 4);
    }

    [Benchmark(Baseline = true)] public void RmsNormReference() => ReferenceKernels.RmsNorm(_x, _w, 1e-6f, _y);
    [Benchmark] public void RmsNorm() => NormKernels.RmsNorm(_x, _w, 1e-6f, _y);
    [Benchmark] public void SoftmaxReference() => ReferenceKernels.Softmax(_x, _y);
    [Benchmark] public void Softmax() { _x.CopyTo(_y, 0); CpuBackend.StableSoftmax(_y); }
    [Benchmark] public void SwiGluReference() => ReferenceKernels.SwiGlu(_gate, _up, _y);
}
