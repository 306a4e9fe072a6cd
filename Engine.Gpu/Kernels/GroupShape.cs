using ILGPU.Runtime;

namespace Engine.Gpu.Kernels;

/// <summary>The thread-group sizes the kernels launch with on one accelerator. Every group kernel is written for
/// any power-of-two group size up to <see cref="MaxGroupSize"/>, because accelerators differ widely: a GPU
/// runs 256 threads per group, ILGPU's CPU accelerator only 16.</summary>
internal sealed class GroupShape
{
    /// <summary>The most threads per group any kernel uses; shared-memory scratch is sized for it (shared
    /// allocations must be compile-time constants).</summary>
    public const int MaxGroupSize = 256;

    /// <summary>Threads per group of the row-reduction kernels (matrix-vector, RMSNorm, attention).</summary>
    public int GroupSize { get; }

    /// <summary>Edge of the square tiles of the matrix-matrix kernel (TileEdge² threads per group).</summary>
    public int TileEdge { get; }

    public GroupShape(Accelerator accelerator)
    {
        GroupSize = LargestPowerOfTwoAtMost(Math.Min(MaxGroupSize, accelerator.MaxNumThreadsPerGroup));
        int edge = 1;
        while ((edge * 2) * (edge * 2) <= GroupSize) edge *= 2;
        TileEdge = edge;
    }

    static int LargestPowerOfTwoAtMost(int n)
    {
        int p = 1;
        while (p * 2 <= n) p *= 2;
        return p;
    }
}
