namespace Engine.Formats.Gguf;

/// <summary>A tensor as the header declares it, after validation (see <see cref="GgufFile"/> for what is checked).
/// The bytes themselves are reached through <see cref="GgufFile.GetTensor"/>.</summary>
/// <param name="Name">The tensor name, exactly as in the file (1 to 63 UTF-8 bytes).</param>
/// <param name="Type">The storage type.</param>
/// <param name="Shape">Dimensions in ggml order, 1 to 4 of them: Shape[0] (ne0) is the contiguous one.</param>
/// <param name="ElementCount">Product of the dimensions (0 when any dimension is 0).</param>
/// <param name="ByteSize">Bytes the tensor takes, computed from the shape and the type's block size.</param>
/// <param name="Offset">Offset of the data relative to the data section (<see cref="GgufFile.DataOffset"/>).</param>
/// <param name="InfoOffset">Absolute offset of this tensor's entry in the header, for error messages.</param>
public sealed record GgufTensorInfo(string Name, GgmlType Type, IReadOnlyList<long> Shape, long ElementCount, long ByteSize, long Offset, long InfoOffset)
{
    /// <summary>The shape as text, "[4096, 32000]" (ggml order).</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
