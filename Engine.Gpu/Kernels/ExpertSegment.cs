namespace Engine.Gpu.Kernels;

/// <summary>How a prompt batch's expert slots are laid out for the expert matmul kernels: sorted by expert, each
/// expert's run padded to whole segments of <see cref="Tokens"/> slots, so that any token tile of a size dividing
/// it (the quantized kernels' 16, the float kernels' edge of at most 16) lies within a single expert.</summary>
internal static class ExpertSegment
{
    public const int Tokens = 16;

    /// <summary>Segments `slots` slots can need at most: each used expert (at most min(experts, slots) of them)
    /// wastes less than one segment to padding.</summary>
    public static int MaxSegments(int slots, int experts) => (slots + Tokens - 1) / Tokens + Math.Min(experts, slots);
}
