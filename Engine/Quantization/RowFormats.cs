using Engine.Formats;

namespace Engine.Quantization;

/// <summary>The registry of weight formats and the matrix-vector entry point the CPU backend calls.</summary>
internal static unsafe class RowFormats
{
    static readonly RowFormat?[] Table = Build();

    static RowFormat?[] Build()
    {
        var t = new RowFormat?[40];
        foreach (var f in All()) t[(int)f.Type] = f;
        return t;
    }

    static IEnumerable<RowFormat> All() =>
    [
        F32Format.Instance, F16Format.Instance, BF16Format.Instance,
        Q8_0Format.Instance, Q4_0Format.Instance, Q5_0Format.Instance,
        Q4_1Format.Instance, Q5_1Format.Instance, IQ4_NLFormat.Instance,
        Q4_KFormat.Instance, Q6_KFormat.Instance, IQ4_XSFormat.Instance, Q5_KFormat.Instance,
        Q2_KFormat.Instance, Q3_KFormat.Instance,
    ];

    public static bool IsSupported(GgmlType t) => (uint)t < (uint)Table.Length && Table[(int)t] is not null;

    public static IRowFormat For(GgmlType t) =>
        (uint)t < (uint)Table.Length && Table[(int)t] is { } f ? f : throw new NotSupportedException($"no CPU kernels for tensor type {t}");

    /// <summary>Every supported weight type.</summary>
    public static IEnumerable<IRowFormat> Supported => Table.Where(f => f is not null).Select(f => (IRowFormat)f!);

    /// <summary>The reference quantizer from float for a weight type, or null when we cannot write that type.</summary>
    public static IWeightQuantizer? QuantizerFor(GgmlType t) =>
        (uint)t < (uint)Table.Length ? Table[(int)t] as IWeightQuantizer : null;

    /// <summary>
    /// y[r] = dot(row r of W, x) for r in [rowStart, rowEnd), where row r starts at weights + r * rowBytes and
    /// activations is x already quantized with f.QuantizeActivations. y is the whole output vector (indexed by
    /// absolute row), so threads can share it with disjoint row ranges.
    /// The caller guarantees that weights spans rowEnd rows; everything else is checked here, once.
    /// </summary>
    public static void MatVecRows(IRowFormat f, byte* weights, long rowBytes, int k, ReadOnlySpan<byte> activations,
        Span<float> y, int rowStart, int rowEnd)
    {
        ArgumentNullException.ThrowIfNull(f);
        if (f is RowFormat rf)
        {
            rf.CheckMatVec(rowBytes, k, activations.Length, y.Length, rowStart, rowEnd);
            fixed (byte* a = activations) fixed (float* yp = y)
                rf.MatVecCore(weights, rowBytes, k, a, yp, rowStart, rowEnd);
            return;
        }
        long need = (long)(k / f.BlockSize) * f.BytesPerBlock;
        for (int r = rowStart; r < rowEnd; r++)
            y[r] = f.DotRow(new ReadOnlySpan<byte>(weights + r * rowBytes, checked((int)need)), activations, k);
    }

    /// <summary>Span overload: weights holds the rows from row 0 on (at least rowEnd of them).</summary>
    public static void MatVecRows(IRowFormat f, ReadOnlySpan<byte> weights, long rowBytes, int k, ReadOnlySpan<byte> activations,
        Span<float> y, int rowStart, int rowEnd)
    {
        long rowLen = (long)(k / Math.Max(1, f.BlockSize)) * f.BytesPerBlock;
        if (rowEnd > rowStart && (rowEnd - 1) * rowBytes + rowLen > weights.Length)
            throw new ArgumentException($"weights hold {weights.Length} bytes, too few for {rowEnd} rows of stride {rowBytes}", nameof(weights));
        fixed (byte* w = weights) MatVecRows(f, w, rowBytes, k, activations, y, rowStart, rowEnd);
    }

    /// <summary>
    /// The batched form of <see cref="MatVecRows(IRowFormat, byte*, long, int, ReadOnlySpan{byte}, Span{float}, int, int)"/>:
    /// for each of `tokens` activation vectors (token t's quantized activations start at t * actStride),
    /// y[t * yStride + r] = dot(row r of W, x_t) for r in [rowStart, rowEnd). Each result has the same bits
    /// the single-token form gives.
    /// </summary>
    public static void MatMulRows(IRowFormat f, byte* weights, long rowBytes, int k, ReadOnlySpan<byte> activations, int actStride,
        int tokens, Span<float> y, int yStride, int rowStart, int rowEnd)
    {
        ArgumentNullException.ThrowIfNull(f);
        if (tokens <= 0 || rowEnd <= rowStart) return;
        if (actStride < f.ActivationBytes(k) || (long)actStride * (tokens - 1) + f.ActivationBytes(k) > activations.Length)
            throw new ArgumentException($"activations hold {activations.Length} bytes, too few for {tokens} tokens of stride {actStride}", nameof(activations));
        if (yStride < rowEnd || (long)yStride * (tokens - 1) + rowEnd > y.Length)
            throw new ArgumentException($"output holds {y.Length} values, too few for {tokens} rows of stride {yStride}", nameof(y));
        if (f is RowFormat rf)
        {
            rf.CheckMatVec(rowBytes, k, actStride, yStride, rowStart, rowEnd);
            fixed (byte* a = activations) fixed (float* yp = y)
                rf.MatMulCore(weights, rowBytes, k, a, actStride, tokens, yp, yStride, rowStart, rowEnd);
            return;
        }
        for (int t = 0; t < tokens; t++)
            MatVecRows(f, weights, rowBytes, k, activations.Slice(t * actStride, actStride), y.Slice(t * yStride, yStride), rowStart, rowEnd);
    }
}
