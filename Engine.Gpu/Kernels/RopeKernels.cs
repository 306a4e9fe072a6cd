using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels;

/// <summary>RoPE on the device: one thread per rotated pair. The per-pair rates come from the host
/// (<see cref="Engine.Backends.Cpu.RopeAngles.AngleRates"/>, so every style and scaling the CPU backend knows is
/// covered by the same code); the device only multiplies them by the position.</summary>
internal sealed class RopeKernels
{
    readonly Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, RopeShape> _rope;

    /// <summary>The layout of the rotated tensor: `heads` heads of `headDim` per token, `half` pairs rotated per
    /// head, adjacent pairs (Normal) or halves (NeoX).</summary>
    public readonly record struct RopeShape(int Heads, int HeadDim, int Half, int NeoX, float MagnitudeScale);

    public RopeKernels(Accelerator accelerator)
    {
        _rope = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, RopeShape>(RopeKernel);
    }

    /// <summary>Rotates every head of `rows` rows of x in place, row r by the angles of its position positions[r]
    /// (a batch's rows each carry their own sequence's position; the positions are on the device already).</summary>
    public void Rope(ArrayView<float> x, int rows, ArrayView<int> positions, ArrayView<float> rates, RopeShape shape) =>
        _rope(rows * shape.Heads * shape.Half, x, positions, rates, shape);

    static void RopeKernel(Index1D index, ArrayView<float> x, ArrayView<int> positions, ArrayView<float> rates, RopeShape shape)
    {
        int pair = index % shape.Half, head = index / shape.Half; // head counts over rows: r * Heads + h
        float angle = positions[head / shape.Heads] * rates[pair];
        float reduced = ReduceAngle(angle);
        float cos = XMath.Cos(reduced) * shape.MagnitudeScale, sin = XMath.Sin(reduced) * shape.MagnitudeScale;
        long first = (long)head * shape.HeadDim;
        int a = shape.NeoX != 0 ? pair : 2 * pair, b = shape.NeoX != 0 ? pair + shape.Half : 2 * pair + 1;
        float x0 = x[first + a], x1 = x[first + b];
        x[first + a] = x0 * cos - x1 * sin;
        x[first + b] = x0 * sin + x1 * cos;
    }

    /// <summary>angle minus the nearest multiple of 2π, with 2π split in two (Cody-Waite) so the subtraction
    /// loses nothing for the angles of realistic positions. Device sin/cos are accurate only near zero (PTX's
    /// are approximations), while the angles of late positions reach thousands of radians.</summary>
    static float ReduceAngle(float angle)
    {
        const float TwoPiHigh = 6.28125f;                 // 201/32: a multiple of it by k < 2^16 is exact in float
        const float TwoPiLow = 1.9353071795864769253e-3f; // 2π - TwoPiHigh
        const float InverseTwoPi = 0.15915494309189533577f;
        float turns = XMath.Floor(angle * InverseTwoPi + 0.5f);
        return angle - turns * TwoPiHigh - turns * TwoPiLow;
    }
}
