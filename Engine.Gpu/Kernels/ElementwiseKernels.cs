using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels;

/// <summary>The element-wise operations of a forward pass: one thread per output element, grouped by ILGPU.</summary>
public sealed class ElementwiseKernels
{
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int> _addBias;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>> _add;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>> _swiGlu;
    readonly Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int> _gatherRows;
    readonly Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int> _scatterAddRows;

    public ElementwiseKernels(Accelerator accelerator)
    {
        _addBias = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int>(AddBiasKernel);
        _add = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(AddKernel);
        _swiGlu = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>(SwiGluKernel);
        _gatherRows = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>(GatherRowsKernel);
        _scatterAddRows = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int>(ScatterAddRowsKernel);
    }

    /// <summary>y[r] += bias for `rows` rows of bias.Length.</summary>
    public void AddBias(ArrayView<float> y, ArrayView<float> bias, int rows, int width) => _addBias(rows * width, y, bias, width);

    /// <summary>x += y over `length` values.</summary>
    public void Add(ArrayView<float> x, ArrayView<float> y, int length) => _add(length, x, y);

    /// <summary>y = silu(gate) * up over `length` values.</summary>
    public void SwiGlu(ArrayView<float> gate, ArrayView<float> up, int length, ArrayView<float> y) => _swiGlu(length, gate, up, y);

    /// <summary>dst row i = src row rows[i], for `count` rows of `width`.</summary>
    public void GatherRows(ArrayView<float> src, ArrayView<int> rows, int count, int width, ArrayView<float> dst) =>
        _gatherRows(count * width, src, rows, dst, width);

    /// <summary>dst row rows[i] += scales[i] * src row i. The rows must be distinct (one thread per element, no
    /// atomics), which the mixture of experts guarantees: a token picks an expert at most once.</summary>
    public void ScatterAddRows(ArrayView<float> src, ArrayView<int> rows, ArrayView<float> scales, int count, int width, ArrayView<float> dst) =>
        _scatterAddRows(count * width, src, rows, scales, dst, width);

    static void AddBiasKernel(Index1D i, ArrayView<float> y, ArrayView<float> bias, int width) => y[i] += bias[i % width];

    static void AddKernel(Index1D i, ArrayView<float> x, ArrayView<float> y) => x[i] += y[i];

    static void SwiGluKernel(Index1D i, ArrayView<float> gate, ArrayView<float> up, ArrayView<float> y)
    {
        // silu(g) = g * sigmoid(g), multiplied in the CPU backend's order: (sigmoid(g) * g) * up.
        float g = gate[i];
        float sigmoid = 1f / (1f + XMath.Exp(-g));
        y[i] = sigmoid * g * up[i];
    }

    static void GatherRowsKernel(Index1D i, ArrayView<float> src, ArrayView<int> rows, ArrayView<float> dst, int width) =>
        dst[i] = src[(long)rows[i / width] * width + i % width];

    static void ScatterAddRowsKernel(Index1D i, ArrayView<float> src, ArrayView<int> rows, ArrayView<float> scales, ArrayView<float> dst, int width)
    {
        int row = i / width;
        // The product is rounded before the sum, as ggml's mul then add (and the CPU backend).
        float product = scales[row] * src[i];
        dst[(long)rows[row] * width + i % width] += product;
    }
}
