using Engine.Backends;
using Engine.Gpu.Kernels;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Gpu;

/// <summary>A routing table in device memory: chosen experts and weights per slot (t * k + slot), and for a batch of
/// several tokens the slots sorted by expert in padded segments (<see cref="ExpertSegment"/>) with staging rows for
/// the sorted inputs and outputs. All of it is allocated once, for the largest batch, and never copied to the host
/// except when an observer or a test asks (<see cref="IBackend.ReadRouting"/>).</summary>
sealed class GpuExpertRouting : ExpertRouting, IDisposable
{
    readonly DeviceMemoryBudget _budget;
    readonly DeviceBuffers _deviceBuffers;
    readonly List<MemoryBuffer> _buffers = [];
    long _bytes;

    public readonly ArrayView<int> Chosen, Counts, SortedSlots, SegmentExpert;
    public readonly ArrayView<float> Weights, SortedInput, SortedOutput;
    public readonly ExpertKernels.Rule Rule;

    public GpuExpertRouting(DeviceBuffers deviceBuffers, DeviceMemoryBudget budget, ExpertRoutingShape shape) : base(shape)
    {
        _budget = budget;
        _deviceBuffers = deviceBuffers;
        int segments = Segments(shape.MaxRows), sorted = segments * ExpertSegment.Tokens;
        long bytes = ((long)shape.MaxSlots * 2 + shape.Experts + sorted + segments) * sizeof(int) + 2L * sorted * shape.MaxWidth * sizeof(float);
        budget.Reserve(bytes, $"the expert routing of {shape.MaxRows} tokens");
        _bytes = bytes;
        try
        {
            Chosen = Allocate<int>(shape.MaxSlots);
            Weights = Allocate<float>(shape.MaxSlots);
            Counts = Allocate<int>(shape.Experts);
            SortedSlots = Allocate<int>(sorted);
            SegmentExpert = Allocate<int>(segments);
            SortedInput = Allocate<float>((long)sorted * shape.MaxWidth);
            SortedOutput = Allocate<float>((long)sorted * shape.MaxWidth);
        }
        catch
        {
            Dispose();
            throw;
        }
        Rule = new ExpertKernels.Rule(shape.Experts, shape.ExpertsPerToken, shape.Gating == Engine.Models.ExpertGating.Sigmoid ? 1 : 0, shape.NormalizeWeights ? 1 : 0);
    }

    /// <summary>Segments the sorted slots of a batch of `rows` tokens may need.</summary>
    public int Segments(int rows) => ExpertSegment.MaxSegments(rows * Shape.ExpertsPerToken, Shape.Experts);

    ArrayView<T> Allocate<T>(long length) where T : unmanaged
    {
        var buffer = _deviceBuffers.Allocate<T>(Math.Max(1, length));
        _buffers.Add(buffer);
        return buffer.View;
    }

    public void Dispose()
    {
        foreach (var buffer in _buffers) _deviceBuffers.Free(buffer);
        _buffers.Clear();
        _budget.Release(_bytes);
        _bytes = 0;
    }
}
