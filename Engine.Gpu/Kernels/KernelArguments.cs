using ILGPU;

namespace Engine.Gpu.Kernels;

/// <summary>The argument checks every weight type's kernels make before a launch: device kernels index their
/// buffers unchecked, so a wrong size must be refused here, on the host, with what was expected.</summary>
internal static class KernelArguments
{
    /// <summary><see cref="IWeightKernels.MatMul"/>: `tokens` rows of x in, `tokens` rows of y out.</summary>
    public static void MatMul(DeviceMatrix w, ArrayView<float> x, int tokens, ArrayView<float> y)
    {
        if (tokens <= 0) throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "at least one token");
        Rows(x, tokens, w.Cols, nameof(x));
        Rows(y, tokens, w.Rows, nameof(y));
    }

    /// <summary><see cref="IWeightKernels.ExpertMatVec"/>: a stack of whole experts, one expert id per slot, an
    /// input row per slotsPerInput slots and an output row per slot.</summary>
    public static void ExpertMatVec(DeviceMatrix stack, int expertRows, ArrayView<int> expertOfSlot, int slots, ArrayView<float> x, int slotsPerInput, ArrayView<float> y)
    {
        Stack(stack, expertRows);
        if (slots <= 0 || slots > expertOfSlot.Length) throw new ArgumentOutOfRangeException(nameof(slots), slots, $"expertOfSlot holds {expertOfSlot.Length}");
        if (slotsPerInput <= 0) throw new ArgumentOutOfRangeException(nameof(slotsPerInput), slotsPerInput, "at least 1");
        Rows(x, (slots - 1) / slotsPerInput + 1, stack.Cols, nameof(x));
        Rows(y, slots, expertRows, nameof(y));
    }

    /// <summary><see cref="IWeightKernels.ExpertMatMul"/>: whole segments of sorted tokens, each with its expert.</summary>
    public static void ExpertMatMul(DeviceMatrix stack, int expertRows, ArrayView<int> segmentExpert, ArrayView<float> x, int tokens, ArrayView<float> y)
    {
        Stack(stack, expertRows);
        if (tokens <= 0 || tokens % ExpertSegment.Tokens != 0 || tokens / ExpertSegment.Tokens > segmentExpert.Length)
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens, $"whole segments of {ExpertSegment.Tokens}, at most {segmentExpert.Length}");
        Rows(x, tokens, stack.Cols, nameof(x));
        Rows(y, tokens, expertRows, nameof(y));
    }

    static void Stack(DeviceMatrix stack, int expertRows)
    {
        if (expertRows <= 0 || stack.Rows % expertRows != 0)
            throw new ArgumentException($"{stack.Name} has {stack.Rows} rows, not a stack of {expertRows}-row experts", nameof(expertRows));
    }

    static void Rows(ArrayView<float> buffer, long rows, int width, string name)
    {
        if (buffer.Length < rows * width) throw new ArgumentException($"{name} holds {buffer.Length} floats, {rows} x {width} needed", name);
    }
}
