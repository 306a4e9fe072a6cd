using Engine.Formats;

namespace Engine.Models;

/// <summary>Binds declared tensors to handles, checking each against the shape the hyperparameters imply
/// (checklist M3) and that required ones exist (M4), as llama.cpp's create_tensor does.</summary>
internal sealed class WeightLoader(ITensorSource source, QuantizedLinearSource? quantized = null)
{
    /// <summary>A matrix y = W x with x of width cols and y of height rows (ggml shape [cols, rows]).</summary>
    public WeightMatrix Matrix(string name, int cols, int rows) =>
        TryMatrix(name, cols, rows) ?? throw MissingTensor(name, $"[{cols}, {rows}]");

    public WeightMatrix? TryMatrix(string name, int cols, int rows)
    {
        if (quantized?.TryMatrix(name, cols, rows) is { } repacked) return repacked;
        if (!source.TryGetTensor(name, out var view)) return null;
        CheckShape(view, [cols, rows]);
        CheckMatrixType(view);
        // The float mode of a GPTQ / AWQ checkpoint is exact only if its F16 / BF16 matrices (lm_head) also see float
        // activations: their usual kernels round the input to F16 first.
        if (quantized is { FloatActivations: true } && view.Type is GgmlType.F16 or GgmlType.BF16)
            return new WeightMatrix(name, view) { Quantized = new QuantizedLinear { FloatActivations = true, Description = $"{view.Type}, float activations" } };
        return new WeightMatrix(name, view);
    }

    /// <summary>One [cols, rows] matrix per expert. A stacked tensor (stackedName, shape [cols, rows, experts],
    /// as llama.cpp writes MoE models) is cut into per-expert views of its own bytes, so a token that picks two
    /// experts touches only those two byte ranges. Without it, per-expert tensors expertName(e) are used: older
    /// Mixtral GGUFs ("blk.N.ffn_gate.E.weight"), and a Hugging Face checkpoint's experts.E.*_proj.</summary>
    public WeightMatrix[] Experts(string stackedName, Func<int, string> expertName, int cols, int rows, int experts)
    {
        var matrices = new WeightMatrix[experts];
        if (source.TryGetTensor(stackedName, out var stacked))
        {
            CheckShape(stacked, [cols, rows, experts]);
            CheckMatrixType(stacked);
            long expertBytes = stacked.ByteSize / experts; // whole rows: a row is whole blocks of its type
            for (int e = 0; e < experts; e++)
            {
                var slice = stacked.Slice($"{stackedName}[{e}]", [cols, rows], e * expertBytes, expertBytes);
                matrices[e] = new WeightMatrix(slice.Name, slice);
            }
            return matrices;
        }
        for (int e = 0; e < experts; e++)
            matrices[e] = TryMatrix(expertName(e), cols, rows)
                ?? throw new ModelFormatException(FormatErrorKind.MissingKey,
                    $"required tensor '{stackedName}' [{cols}, {rows}, {experts}] is missing (and so is the per-expert '{expertName(e)}' [{cols}, {rows}])",
                    field: stackedName);
        return matrices;
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

    static void CheckMatrixType(TensorView view)
    {
        if (!IsMatrixType(view.Type))
            throw new ModelFormatException(FormatErrorKind.UnknownTensorType,
                $"tensor '{view.Name}' has type {view.Type}, which this engine cannot compute with yet", field: view.Name, actual: view.Type.ToString());
    }

    static void CheckShape(TensorView view, long[] expected)
    {
        // Trailing dimensions of 1 are equivalent (some writers keep them; a one-row matrix such as qwen2moe's
        // shared-expert gate is stored as a vector).
        if (!WithoutTrailingOnes(view.Shape).SequenceEqual(WithoutTrailingOnes(expected)))
            throw new ModelFormatException(FormatErrorKind.InvalidShape, $"tensor '{view.Name}' has wrong shape", field: view.Name,
                expected: "[" + string.Join(", ", expected) + "]", actual: view.ShapeText);
    }

    static List<long> WithoutTrailingOnes(IReadOnlyList<long> shape)
    {
        var trimmed = shape.ToList();
        while (trimmed.Count > 1 && trimmed[^1] == 1) trimmed.RemoveAt(trimmed.Count - 1);
        return trimmed;
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
