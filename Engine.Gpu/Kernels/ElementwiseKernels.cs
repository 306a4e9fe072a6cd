using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels;

/// <summary>The element-wise operations of a forward pass: one thread per output element, grouped by ILGPU.</summary>
internal sealed class ElementwiseKernels
{
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int> _addBias;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>> _add;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>> _swiGlu;

    public ElementwiseKernels(Accelerator accelerator)
    {
        _addBias = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int>(AddBiasKernel);
        _add = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(AddKernel);
        _swiGlu = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>(SwiGluKernel);
    }

    /// <summary>y[r] += bias for `rows` rows of bias.Length.</summary>
    public void AddBias(ArrayView<float> y, ArrayView<float> bias, int rows, int width) => _addBias(rows * width, y, bias, width);

    /// <summary>x += y over `length` values.</summary>
    public void Add(ArrayView<float> x, ArrayView<float> y, int length) => _add(length, x, y);

    /// <summary>y = silu(gate) * up over `length` values.</summary>
    public void SwiGlu(ArrayView<float> gate, ArrayView<float> up, int length, ArrayView<float> y) => _swiGlu(length, gate, up, y);

    static void AddBiasKernel(Index1D i, ArrayView<float> y, ArrayView<float> bias, int width) => y[i] += bias[i % width];

    static void AddKernel(Index1D i, ArrayView<float> x, ArrayView<float> y) => x[i] += y[i];

    static void SwiGluKernel(Index1D i, ArrayView<float> gate, ArrayView<float> up, ArrayView<float> y)
    {
        // silu(g) = g * sigmoid(g), multiplied in the CPU backend's order: (sigmoid(g) * g) * up.
        float g = gate[i];
        float sigmoid = 1f / (1f + XMath.Exp(-g));
        y[i] = sigmoid * g * up[i];
    }
}
