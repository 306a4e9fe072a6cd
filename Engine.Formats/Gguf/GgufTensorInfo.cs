namespace Engine.Formats.Gguf;

/// <summary>A tensor as the header declares it, after validation. Offset is relative to the data section.</summary>
public sealed record GgufTensorInfo(string Name, GgmlType Type, long[] Shape, long ElementCount, long ByteSize, long Offset, long InfoOffset)
{
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
