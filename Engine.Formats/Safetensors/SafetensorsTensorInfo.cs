namespace Engine.Formats.Safetensors;

/// <summary>One validated tensor entry of a Safetensors header.</summary>
/// <param name="Name">The tensor name, exactly as in the header.</param>
/// <param name="DType">The element type.</param>
/// <param name="Shape">Dimensions in the file's (PyTorch, row-major) order: the LAST one is contiguous.
/// <see cref="SafetensorsFile.GetView"/> reverses them into ggml order.</param>
/// <param name="ElementCount">Product of the dimensions (1 for a 0-rank scalar, 0 if any dimension is 0).</param>
/// <param name="FileOffset">Absolute byte offset of the data in the file (8 + header length + BEGIN).</param>
/// <param name="ByteSize">END - BEGIN, proven equal to ElementCount * bits / 8.</param>
public sealed record SafetensorsTensorInfo(
    string Name, SafetensorsDType DType, IReadOnlyList<long> Shape, long ElementCount, long FileOffset, long ByteSize)
{
    /// <summary>The shape as text, "[32000, 4096]" (the file's order).</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
    /// <summary>Name, dtype, shape and extent, "lm_head.weight BF16 [32000, 4096] @1024+262144000".</summary>
    public override string ToString() => $"{Name} {DType} {ShapeText} @{FileOffset}+{ByteSize}";
}
