using Engine.Formats;

namespace Engine.Models;

/// <summary>Binds declared tensors to handles, checking each against the shape the hyperparameters imply
/// (checklist M3) and that required ones exist (M4), as llama.cpp's create_tensor does.</summary>
public sealed class WeightLoader(ITensorSource source)
{
    /// <summary>A matrix y = W x with x of width cols and y of height rows (ggml shape [cols, rows]).</summary>
    public WeightMatrix Matrix(string name, int cols, int rows) =>
        TryMatrix(name, cols, rows) ?? throw MissingTensor(name, $"[{cols}, {rows}]");

    public WeightMatrix? TryMatrix(string name, int cols, int rows)
    {
        if (!source.TryGetTensor(name, out var view)) return null;
        CheckShape(view, [cols, rows]);
        if (!IsMatrixType(view.Type))
            throw new ModelFormatException(FormatErrorKind.UnknownTensorType,
                $"tensor '{name}' has type {view.Type}, which this engine cannot compute with yet", field: name, actual: view.Type.ToString());
        return new WeightMatrix(name, view);
    }

    public WeightVector Vector(string name, int length) =>
        TryVector(name, length) ?? throw MissingTensor(name, $"[{length}]");

    public WeightVector? TryVector(string name, int length)
    {
        if (!source.TryGetTensor(name, out var view)) return null;
        CheckShape(view, [length]);
        return new WeightVector(name, ToFloats(view));
    }

    static bool IsMatrixType(GgmlType type) => Engine.Quantization.RowFormats.IsSupported(type);

    static void CheckShape(TensorView view, long[] expected)
    {
        // Trailing dimensions of 1 are equivalent (some writers keep them).
        var actual = view.Shape.ToList();
        while (actual.Count > expected.Length && actual[^1] == 1) actual.RemoveAt(actual.Count - 1);
        if (!actual.SequenceEqual(expected))
            throw new ModelFormatException(FormatErrorKind.InvalidShape, $"tensor '{view.Name}' has wrong shape", field: view.Name,
                expected: "[" + string.Join(", ", expected) + "]", actual: view.ShapeText);
    }

    static ModelFormatException MissingTensor(string name, string shape) =>
        new(FormatErrorKind.MissingKey, $"required tensor '{name}' {shape} is missing", field: name);

    /// <summary>Converts a small float tensor (F32, F16, BF16) to float32 with the same row conversion the
    /// matmuls use (Engine.Quantization's float formats).</summary>
    public static float[] ToFloats(TensorView view)
    {
        if (view.Type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16))
            throw new ModelFormatException(FormatErrorKind.UnknownTensorType, $"tensor '{view.Name}' must be F32, F16 or BF16",
                field: view.Name, actual: view.Type.ToString());
        var result = new float[view.ElementCount];
        Engine.Quantization.RowFormats.For(view.Type).DequantizeRow(view.Bytes, result);
        return result;
    }
}
