using Engine.Formats;

namespace Engine.Quantization;

/// <summary>Reading quantized activation vectors back as floats (for tests and debugging dumps).</summary>
internal static unsafe class Activations
{
    public static void Dequantize(GgmlType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        int k = dst.Length;
        var info = type.Info();
        if (k % info.BlockSize != 0 || src.Length < k / info.BlockSize * info.BytesPerBlock)
            throw new ArgumentException($"{type}: {src.Length} bytes do not hold {k} elements");
        fixed (byte* s = src) fixed (float* d = dst)
        {
            switch (type)
            {
                case GgmlType.F32: for (int i = 0; i < k; i++) d[i] = ((float*)s)[i]; break;
                case GgmlType.F16: for (int i = 0; i < k; i++) d[i] = Fp16.ToSingle(((ushort*)s)[i]); break;
                case GgmlType.BF16: for (int i = 0; i < k; i++) d[i] = Fp16.BF16ToSingle(((ushort*)s)[i]); break;
                case GgmlType.Q8_0:
                    for (int i = 0; i < k; i++) d[i] = ((BlockQ8_0*)s)[i / 32].Qs[i % 32] * (float)((BlockQ8_0*)s)[i / 32].D;
                    break;
                case GgmlType.Q8_1:
                    for (int i = 0; i < k; i++) d[i] = ((BlockQ8_1*)s)[i / 32].Qs[i % 32] * (float)((BlockQ8_1*)s)[i / 32].D;
                    break;
                case GgmlType.Q8_K:
                    for (int i = 0; i < k; i++) d[i] = ((BlockQ8_K*)s)[i / 256].Qs[i % 256] * ((BlockQ8_K*)s)[i / 256].D;
                    break;
                default: throw new NotSupportedException($"{type} is not an activation format");
            }
        }
    }
}
