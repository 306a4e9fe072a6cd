using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Engine.Formats;
namespace Engine.Quantization;

/// <summary>Float rows to the bytes of a ggml type: F32/F16/BF16 by conversion (rounding to nearest even, as ggml and
/// gguf-py convert), the quantized types by the engine's port of llama.cpp's quantize_row_*_ref, or of its importance-weighted quantizers
/// when an importance matrix is given. The one row writer of
/// `engine quantize`, `engine convert` and the engine-convert synthesizer.</summary>
internal static class RowEncoder
{
    public static long RowBytes(GgmlType type, long rowLength)
    {
        var info = type.Info();
        if (rowLength % info.BlockSize != 0)
            throw new ArgumentException($"a row of {rowLength} does not split into {type} blocks of {info.BlockSize}");
        return rowLength / info.BlockSize * info.BytesPerBlock;
    }

    /// <summary>Whether rows of this type can be written.</summary>
    public static bool CanEncode(GgmlType type) =>
        type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 || RowFormats.QuantizerFor(type) is not null;

    public static void Encode(GgmlType type, ReadOnlySpan<float> row, Span<byte> dst) => Encode(type, row, dst, default);

    /// <summary>One row with importance weights (one per element; empty for none), as ggml_quantize_chunk writes it:
    /// the quantized types use their weighted quantizer, the float types and Q8_0 ignore the weights.</summary>
    public static void Encode(GgmlType type, ReadOnlySpan<float> row, Span<byte> dst, ReadOnlySpan<float> importance)
    {
        switch (type)
        {
            case GgmlType.F32:
                MemoryMarshal.AsBytes(row).CopyTo(dst);
                break;
            case GgmlType.F16:
                TensorPrimitives.ConvertToHalf(row, MemoryMarshal.Cast<byte, Half>(dst));
                break;
            case GgmlType.BF16:
                var bf = MemoryMarshal.Cast<byte, ushort>(dst);
                for (int i = 0; i < row.Length; i++) bf[i] = Fp16.SingleToBF16(row[i]);
                break;
            default:
                var quantizer = RowFormats.QuantizerFor(type) ?? throw new NotSupportedException($"the engine cannot write {type} rows");
                if (importance.IsEmpty) quantizer.QuantizeRowReference(row, dst);
                else quantizer.QuantizeRowWeighted(row, dst, importance);
                break;
        }
    }
}
