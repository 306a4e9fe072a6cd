using Engine.Formats;
using Engine.Models;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels;

/// <summary>A weight matrix living in device memory, in whatever layout its type's kernels chose at upload
/// (raw ggml blocks, or re-packed for aligned, coalesced loads). Owned by the backend; freed with it.</summary>
internal abstract class DeviceMatrix(string name, GgmlType type, int rows, int cols) : IDisposable
{
    public string Name { get; } = name;
    public GgmlType Type { get; } = type;
    /// <summary>Output rows N.</summary>
    public int Rows { get; } = rows;
    /// <summary>Input width K (ggml ne0).</summary>
    public int Cols { get; } = cols;
    /// <summary>Device bytes this matrix occupies.</summary>
    public abstract long Bytes { get; }
    public abstract void Dispose();
}

/// <summary>
/// The device kernels of one weight storage type (F32, F16, BF16, Q8_0, Q4_0, Q4_K, ...). One instance per
/// accelerator: the constructor loads (compiles) its kernels once. Every call is enqueued on the
/// accelerator's default stream and does not synchronize; the backend synchronizes only when it reads
/// results back to the host.
/// </summary>
internal interface IWeightKernels
{
    GgmlType Type { get; }

    /// <summary>Device bytes <see cref="Upload"/> will need for a rows x cols matrix (the memory check made
    /// before anything is uploaded).</summary>
    long DeviceBytes(int rows, int cols);

    /// <summary>Copies the matrix to the device once (weights are never copied again).</summary>
    DeviceMatrix Upload(WeightMatrix weights);

    /// <summary>y[t * Rows + r] = sum over c of W[r, c] * x[t * Cols + c], for t &lt; tokens and r &lt; Rows.
    /// One token is the decode matrix-vector product; many tokens the prompt matrix-matrix product.</summary>
    void MatMul(DeviceMatrix w, ArrayView<float> x, int tokens, ArrayView<float> y);

    /// <summary>dst[i * Cols + c] = W[rowIds[i], c] as float, for i &lt; count (the embedding lookup).</summary>
    void DequantizeRows(DeviceMatrix w, ArrayView<int> rowIds, int count, ArrayView<float> dst);

    /// <summary>Copies equal matrices (a layer's experts) to the device once, one after another: a stack of
    /// experts.Count x rows rows, expert e's first row at e * rows.</summary>
    DeviceMatrix UploadStack(string name, IReadOnlyList<WeightMatrix> experts);

    /// <summary>Decode through experts: y[s * expertRows + r] = W_e[r] · x[(s / slotsPerInput) * Cols ..] for each slot
    /// s &lt; slots, with e = expertOfSlot[s] read on the device and W_e expert e's expertRows rows of the stack.</summary>
    void ExpertMatVec(DeviceMatrix stack, int expertRows, ArrayView<int> expertOfSlot, int slots, ArrayView<float> x, int slotsPerInput, ArrayView<float> y);

    /// <summary>A prompt through experts: x holds `tokens` rows sorted by expert in segments of
    /// <see cref="ExpertSegment.Tokens"/>, segment g all of expert segmentExpert[g] (-1: unused, skipped);
    /// y[p * expertRows + r] = W_e[r] · x[p * Cols ..] with e the expert of p's segment.</summary>
    void ExpertMatMul(DeviceMatrix stack, int expertRows, ArrayView<int> segmentExpert, ArrayView<float> x, int tokens, ArrayView<float> y);
}
