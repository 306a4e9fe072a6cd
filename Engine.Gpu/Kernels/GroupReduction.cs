using ILGPU;

namespace Engine.Gpu.Kernels;

/// <summary>Reductions across one thread group through shared memory, called from inside group kernels.
/// The group size must be a power of two (<see cref="GroupShape"/> guarantees it). Every thread of the group
/// must call them (they contain barriers) and every thread gets the result.</summary>
internal static class GroupReduction
{
    public static float Sum(ArrayView<float> scratch, float value)
    {
        int lane = Group.IdxX;
        scratch[lane] = value;
        Group.Barrier();
        for (int stride = Group.DimX / 2; stride > 0; stride >>= 1)
        {
            if (lane < stride) scratch[lane] += scratch[lane + stride];
            Group.Barrier();
        }
        float total = scratch[0];
        // The scratch is reused by the next reduction: nobody may overwrite it before all have read the total.
        Group.Barrier();
        return total;
    }

    public static float Max(ArrayView<float> scratch, float value)
    {
        int lane = Group.IdxX;
        scratch[lane] = value;
        Group.Barrier();
        for (int stride = Group.DimX / 2; stride > 0; stride >>= 1)
        {
            if (lane < stride) scratch[lane] = Math.Max(scratch[lane], scratch[lane + stride]);
            Group.Barrier();
        }
        float total = scratch[0];
        Group.Barrier();
        return total;
    }
}
