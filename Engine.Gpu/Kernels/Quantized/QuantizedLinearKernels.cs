using Engine.Formats;
using Engine.Models;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>What a GPTQ / AWQ linear (<see cref="QuantizedLinear"/>) needs on the device beside its Q4_0 rows, for one
/// matrix or one layer's stack of experts: the act-order input order, [experts][cols], and the zero-point terms
/// s·(8 − z), transposed to [experts][blocks][rows] so that the threads of neighbouring rows read neighbouring floats.
/// RoundToQ8 is the 8-bit activation mode: the input is rounded to Q8_0 values before the Q4_0 product, as the CPU's
/// kernels quantize it.</summary>
internal sealed class DeviceQuantizedLinear(MemoryBuffer1D<int, Stride1D.Dense>? order, MemoryBuffer1D<float, Stride1D.Dense>? terms, bool roundToQ8)
{
    public MemoryBuffer1D<int, Stride1D.Dense>? Order { get; } = order;
    public MemoryBuffer1D<float, Stride1D.Dense>? Terms { get; } = terms;
    public bool RoundToQ8 { get; } = roundToQ8;
}

/// <summary>
/// The GPTQ / AWQ linears on the device. A layer's rows are Q4_0 (repacked at load), so the product itself is the Q4_0
/// kernels' (dense, decode and prompt; experts' stacks likewise); around it:
/// <list type="number">
/// <item>prepare, one thread per 32-input block of a row: the input read in the matrix's column order (act-order), its
/// block sum for the zero term (of the float input, as the CPU backend sums it), and in 8-bit mode the values rounded
/// to Q8_0 (f16 scale amax / 127, round-half-even), each kept as the float d·q, which the float Q4_0 kernels then
/// multiply: every product and the block's sum of them is what the CPU's integer dot computes, to float rounding;</item>
/// <item>the Q4_0 product on the prepared rows;</item>
/// <item>the zero term, one thread per output: y[t, r] += Σ_b terms[b, r] · sums[t, b].</item>
/// </list>
/// A row's expert (which order and terms it takes) is read on the device: the slot's chosen expert in decode, the
/// segment's expert in a sorted prompt (-1 marks an unused segment: its rows are zeroed and skipped).
/// </summary>
internal sealed class QuantizedLinearKernels : IDisposable
{
    const int Block = 32;

    /// <summary>How the rows of one call find their input row and their expert (input row = row / InputDivisor;
    /// expert = experts[row / ExpertDivisor] when HasExperts, else 0), and what the prepare kernel writes.</summary>
    public readonly record struct RowShape(int Cols, int InputDivisor, int HasExperts, int ExpertDivisor, int HasOrder, int RoundToQ8, int WritePrepared, int WriteSums);

    readonly Accelerator _accelerator;
    readonly DeviceBuffers _buffers;
    readonly DeviceMemoryBudget _budget;
    readonly Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<int>, RowShape, ArrayView<float>, ArrayView<float>> _prepare;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, int, int, int, ArrayView<float>> _zeroTerms;
    readonly DeviceStaging<float> _prepared, _sums;
    // Stand in for an absent order, expert table or sums (a kernel argument cannot be null).
    readonly MemoryBuffer1D<int, Stride1D.Dense> _none;
    readonly MemoryBuffer1D<float, Stride1D.Dense> _noSums;

    public QuantizedLinearKernels(Accelerator accelerator, DeviceBuffers buffers, DeviceMemoryBudget budget)
    {
        _accelerator = accelerator;
        _buffers = buffers;
        _budget = budget;
        _prepare = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<int>, RowShape, ArrayView<float>, ArrayView<float>>(PrepareKernel);
        _zeroTerms = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, int, int, int, ArrayView<float>>(ZeroTermsKernel);
        _prepared = new DeviceStaging<float>(accelerator, buffers, budget, "the GPTQ / AWQ linears' prepared input");
        _sums = new DeviceStaging<float>(accelerator, buffers, budget, "the GPTQ / AWQ linears' block sums");
        budget.Reserve(sizeof(int) + sizeof(float), "the GPTQ / AWQ linears' empty tables");
        _none = buffers.Allocate<int>(1);
        _noSums = buffers.Allocate<float>(1);
    }

    /// <summary>Whether `w` needs anything here: an order, zero points, or its input rounded to 8 bits. A symmetric
    /// layer in float mode is a plain Q4_0 matrix (and a checkpoint's F16 matrix in float mode a plain F16 one: the
    /// device's float kernels already take float activations).</summary>
    public static bool Needed(WeightMatrix w) =>
        w.Quantized is { } q && (q.InputOrder is not null || q.ZeroCorrection is not null || (!q.FloatActivations && w.Type == GgmlType.Q4_0));

    /// <summary>Refuses, naming the tensor, a quantized linear these kernels cannot run (its rows are not Q4_0 or not
    /// whole 32-input blocks, or its tables do not fit its shape).</summary>
    public static void Check(WeightMatrix w)
    {
        if (!Needed(w)) return;
        var q = w.Quantized!;
        if (w.Type != GgmlType.Q4_0 || w.Cols % Block != 0)
            throw new NotSupportedException($"tensor {w.Name} ({q.Description}) is held as {w.Type} x {w.Cols} inputs; the GPU backend runs GPTQ / AWQ layers as Q4_0 rows of whole 32-input blocks");
        if (q.InputOrder is { } order && order.Length != w.Cols)
            throw new ArgumentException($"tensor {w.Name}: its input order has {order.Length} entries for {w.Cols} inputs");
        if (q.ZeroCorrection is { } terms && (q.GroupColumns % Block != 0 || w.Cols % q.GroupColumns != 0 || terms.LongLength != (long)w.Rows * (w.Cols / q.GroupColumns)))
            throw new ArgumentException($"tensor {w.Name}: {terms.LongLength} zero-point terms for {w.Rows} rows x groups of {q.GroupColumns} of {w.Cols} inputs");
    }

    /// <summary>Device bytes <see cref="Upload"/> takes for these matrices (one, or a layer's experts).</summary>
    public static long DeviceBytes(IReadOnlyList<WeightMatrix> parts)
    {
        var first = parts[0];
        bool order = parts.Any(p => p.Quantized?.InputOrder is not null), terms = parts.Any(p => p.Quantized?.ZeroCorrection is not null);
        return (order ? (long)parts.Count * first.Cols * sizeof(int) : 0)
             + (terms ? (long)parts.Count * first.Rows * (first.Cols / Block) * sizeof(float) : 0);
    }

    /// <summary>Uploads the order and terms of one matrix or of a layer's experts (all of one shape; an expert without
    /// an order reads its input in place, one without zero points gets zero terms). The caller has checked each part
    /// and reserved <see cref="DeviceBytes"/>.</summary>
    public DeviceQuantizedLinear Upload(IReadOnlyList<WeightMatrix> parts)
    {
        var first = parts[0];
        int cols = first.Cols, rows = first.Rows, blocks = cols / Block;
        MemoryBuffer1D<int, Stride1D.Dense>? order = null;
        MemoryBuffer1D<float, Stride1D.Dense>? terms = null;
        if (parts.Any(p => p.Quantized?.InputOrder is not null))
        {
            var host = new int[checked(parts.Count * cols)];
            for (int e = 0; e < parts.Count; e++)
            {
                var span = host.AsSpan(e * cols, cols);
                if (parts[e].Quantized?.InputOrder is { } o) o.CopyTo(span);
                else for (int j = 0; j < cols; j++) span[j] = j;
            }
            order = _buffers.Allocate(host);
        }
        if (parts.Any(p => p.Quantized?.ZeroCorrection is not null))
        {
            var host = new float[checked((long)parts.Count * blocks * rows)];
            for (int e = 0; e < parts.Count; e++)
                if (parts[e].Quantized is { ZeroCorrection: { } t } q)
                {
                    // The host holds one term per group (GroupColumns inputs, a multiple of 32); the device kernel
                    // reads one per 32-input block, so each group's term is repeated for its blocks.
                    long at = (long)e * blocks * rows;
                    int groups = cols / q.GroupColumns, blocksPerGroup = q.GroupColumns / Block;
                    for (int r = 0; r < rows; r++)
                        for (int b = 0; b < blocks; b++) host[at + (long)b * rows + r] = t[(long)r * groups + b / blocksPerGroup];
                }
            terms = _buffers.Allocate(host);
        }
        return new DeviceQuantizedLinear(order, terms, first.Quantized is { FloatActivations: false });
    }

    /// <summary>Frees what <see cref="Upload"/> allocated, and the budget it was reserved under.</summary>
    public void Free(DeviceQuantizedLinear linear)
    {
        foreach (MemoryBuffer? buffer in new MemoryBuffer?[] { linear.Order, linear.Terms })
            if (buffer is not null)
            {
                _budget.Release(buffer.LengthInBytes);
                _buffers.Free(buffer);
            }
    }

    /// <summary><see cref="IWeightKernels.MatMul"/> of a GPTQ / AWQ matrix.</summary>
    public void MatMul(IWeightKernels kernels, DeviceMatrix w, DeviceQuantizedLinear linear, ArrayView<float> x, int tokens, ArrayView<float> y)
    {
        KernelArguments.MatMul(w, x, tokens, y);
        var input = Prepare(linear, x, tokens, w.Cols, inputDivisor: 1, experts: null, expertDivisor: 1, out var sums);
        kernels.MatMul(w, input, tokens, y);
        AddZeroTerms(linear, sums, tokens, w.Rows, w.Cols, experts: null, expertDivisor: 1, y);
    }

    /// <summary><see cref="IWeightKernels.ExpertMatVec"/> of a stack of GPTQ / AWQ experts (a decode step).</summary>
    public void ExpertMatVec(IWeightKernels kernels, DeviceMatrix stack, DeviceQuantizedLinear linear, int expertRows, ArrayView<int> expertOfSlot, int slots,
        ArrayView<float> x, int slotsPerInput, ArrayView<float> y)
    {
        KernelArguments.ExpertMatVec(stack, expertRows, expertOfSlot, slots, x, slotsPerInput, y);
        var input = Prepare(linear, x, slots, stack.Cols, slotsPerInput, expertOfSlot, expertDivisor: 1, out var sums);
        // A prepared input has a row per slot.
        kernels.ExpertMatVec(stack, expertRows, expertOfSlot, slots, input, Rewrites(linear) ? 1 : slotsPerInput, y);
        AddZeroTerms(linear, sums, slots, expertRows, stack.Cols, expertOfSlot, expertDivisor: 1, y);
    }

    /// <summary><see cref="IWeightKernels.ExpertMatMul"/> of a stack of GPTQ / AWQ experts (a prompt, sorted by expert).</summary>
    public void ExpertMatMul(IWeightKernels kernels, DeviceMatrix stack, DeviceQuantizedLinear linear, int expertRows, ArrayView<int> segmentExpert,
        ArrayView<float> x, int tokens, ArrayView<float> y)
    {
        KernelArguments.ExpertMatMul(stack, expertRows, segmentExpert, x, tokens, y);
        var input = Prepare(linear, x, tokens, stack.Cols, inputDivisor: 1, segmentExpert, ExpertSegment.Tokens, out var sums);
        kernels.ExpertMatMul(stack, expertRows, segmentExpert, input, tokens, y);
        AddZeroTerms(linear, sums, tokens, expertRows, stack.Cols, segmentExpert, ExpertSegment.Tokens, y);
    }

    /// <summary>The input the Q4_0 kernels read (x itself when it needs neither an order nor rounding), and the block
    /// sums when the layer has zero points.</summary>
    ArrayView<float> Prepare(DeviceQuantizedLinear linear, ArrayView<float> x, int rows, int cols, int inputDivisor, ArrayView<int>? experts, int expertDivisor,
        out ArrayView<float> sums)
    {
        bool order = linear.Order is not null, round = linear.RoundToQ8, needSums = linear.Terms is not null;
        bool write = Rewrites(linear);
        int blocks = cols / Block;
        sums = needSums ? _sums.Space((long)rows * blocks) : _noSums.View;
        if (!write && !needSums) return x;
        var prepared = write ? _prepared.Space((long)rows * cols) : x;
        var shape = new RowShape(cols, inputDivisor, experts is null ? 0 : 1, expertDivisor, order ? 1 : 0, round ? 1 : 0, write ? 1 : 0, needSums ? 1 : 0);
        _prepare(checked(rows * blocks), x, linear.Order?.View ?? _none.View, experts ?? _none.View, shape, prepared, sums);
        return prepared;
    }

    /// <summary>Whether the Q4_0 kernels read a prepared copy of the input rather than the input itself.</summary>
    static bool Rewrites(DeviceQuantizedLinear linear) => linear.Order is not null || linear.RoundToQ8;

    void AddZeroTerms(DeviceQuantizedLinear linear, ArrayView<float> sums, int tokens, int rows, int cols, ArrayView<int>? experts, int expertDivisor, ArrayView<float> y)
    {
        if (linear.Terms is not { } terms) return;
        _zeroTerms(checked(tokens * rows), terms.View, sums, experts ?? _none.View, experts is null ? 0 : 1, expertDivisor, rows, cols / Block, y);
    }

    static void PrepareKernel(Index1D index, ArrayView<float> x, ArrayView<int> order, ArrayView<int> experts, RowShape shape, ArrayView<float> prepared, ArrayView<float> sums)
    {
        int blocks = shape.Cols / Block;
        int row = index / blocks, block = index % blocks;
        int expert = shape.HasExperts != 0 ? experts[row / shape.ExpertDivisor] : 0;
        long to = (long)row * shape.Cols + block * Block;
        if (expert < 0)
        {
            // An unused segment of a sorted prompt: the matmul skips it, but keep its values defined.
            if (shape.WritePrepared != 0)
                for (int j = 0; j < Block; j++) prepared[to + j] = 0f;
            if (shape.WriteSums != 0) sums[index] = 0f;
            return;
        }
        long from = (long)(row / shape.InputDivisor) * shape.Cols;
        long orderAt = (long)expert * shape.Cols + block * Block;
        float sum = 0f, amax = 0f;
        for (int j = 0; j < Block; j++)
        {
            float v = x[from + (shape.HasOrder != 0 ? order[orderAt + j] : block * Block + j)];
            if (shape.WritePrepared != 0) prepared[to + j] = v;
            sum += v;
            amax = XMath.Max(amax, XMath.Abs(v));
        }
        if (shape.WriteSums != 0) sums[index] = sum;
        if (shape.RoundToQ8 == 0) return;
        float d = DeviceHalf.ToFloat(Q8_0Rounding.Scale(amax));
        float inverse = Q8_0Rounding.Inverse(amax);
        for (int j = 0; j < Block; j++)
            prepared[to + j] = d * Q8_0Rounding.RoundHalfToEven(prepared[to + j] * inverse);
    }

    /// <summary>y[t * rows + r] += Σ_b terms[expert][b][r] · sums[t][b], one thread per (t, r).</summary>
    static void ZeroTermsKernel(Index1D index, ArrayView<float> terms, ArrayView<float> sums, ArrayView<int> experts, int hasExperts, int expertDivisor,
        int rows, int blocks, ArrayView<float> y)
    {
        int t = index / rows, r = index % rows;
        int expert = hasExperts != 0 ? experts[t / expertDivisor] : 0;
        if (expert < 0) return;
        long at = (long)expert * blocks * rows + r;
        long sumAt = (long)t * blocks;
        float acc = 0f;
        for (int b = 0; b < blocks; b++) acc += terms[at + (long)b * rows] * sums[sumAt + b];
        y[index] += acc;
    }

    public void Dispose()
    {
        _prepared.Dispose();
        _sums.Dispose();
        _budget.Release(_none.LengthInBytes + _noSums.LengthInBytes);
        _buffers.Free(_none);
        _buffers.Free(_noSums);
    }
}
