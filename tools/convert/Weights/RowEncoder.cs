using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Engine.Formats;
using Engine.Quantization;

namespace Engine.Convert.Weights;

/// <summary>Float rows to the bytes of a ggml type: F32/F16/BF16 by conversion (rounding to nearest even, as ggml
/// converts), the quantized types by the engine's port of llama.cpp's quantize_row_*_ref.</summary>
public static class RowEncoder
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

    public static void Encode(GgmlType type, ReadOnlySpan<float> row, Span<byte> dst)
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
                for (int i = 0; i < row.Length; i++) bf[i] = ToBFloat16(row[i]);
                break;
            default:
                var quantizer = RowFormats.QuantizerFor(type) ?? throw new NotSupportedException($"the engine cannot write {type} rows");
                quantizer.QuantizeRowReference(row, dst);
                break;
        }
    }

    /// <summary>ggml_compute_fp32_to_bf16: round to nearest even, NaN kept (and made quiet).</summary>
    public static ushort ToBFloat16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (ushort)((u >> 16) | 64);
        return (ushort)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
    }
}
