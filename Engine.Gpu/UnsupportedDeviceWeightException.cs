using Engine.Formats;

namespace Engine.Gpu;

/// <summary>A model has a weight type the GPU backend has no kernels for: load it on the CPU instead.</summary>
public sealed class UnsupportedDeviceWeightException : NotSupportedException
{
    internal UnsupportedDeviceWeightException(string tensor, GgmlType type, IEnumerable<GgmlType> supported)
        : base($"tensor {tensor} is {type}, which the GPU backend has no kernels for (it supports " +
               $"{string.Join(", ", supported)}); run with --device cpu")
    {
        Tensor = tensor;
        Type = type;
    }

    /// <summary>The tensor whose type is not supported.</summary>
    public string Tensor { get; }
    /// <summary>Its storage type.</summary>
    public GgmlType Type { get; }
}
