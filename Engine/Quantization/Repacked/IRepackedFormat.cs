using Engine.Formats;

namespace Engine.Quantization.Repacked;

/// <summary>
/// A block type with a row-interleaved layout the CPU backend can copy a matrix into at load: one group holds the
/// same block column of 8 (or 16) consecutive rows, so a kernel loads each activation once for all of them and ends
/// with the row results in the lanes. Activations are the block type's own (<see cref="RowFormat"/>'s activation
/// format), quantized once per matmul as for the row kernels.
///
/// A format lists itself in <see cref="RepackedFormats"/>; <c>Engine.Backends.Cpu.RepackedWeights</c> does the
/// rest (reading the source through the file, memory, dispatch over groups of rows).
/// </summary>
internal unsafe interface IRepackedFormat
{
    GgmlType Type { get; }

    /// <summary>Rows per group (8 or 16); groupStart and groupEnd below count groups.</summary>
    int GroupRows { get; }

    /// <summary>Whether this machine runs the layout's kernels faster than the row kernels.</summary>
    bool FasterHere { get; }

    /// <summary>True when a rows x k matrix can be repacked (whole groups of rows, whole blocks).</summary>
    bool CanRepack(int rows, int k);

    /// <summary>Bytes of the repacked form of a rows x k matrix.</summary>
    long PackedBytes(int rows, int k);

    /// <summary>Repacks `rows` rows of k elements (row r at src + r * rowBytes; rows a multiple of GroupRows) into dst.</summary>
    void RepackRows(byte* src, long rowBytes, int rows, int k, byte* dst);

    /// <summary>y[G * g + j] = row G * g + j . act (G = GroupRows) for the groups [groupStart, groupEnd) (one token: decode).</summary>
    void MatVec(byte* packed, int k, byte* act, float* y, int groupStart, int groupEnd);

    /// <summary>y[t * yStride + G * g + j] for every token t (its activations at acts + t * actStride) and the groups
    /// [groupStart, groupEnd) (a prompt).</summary>
    void MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd);
}

/// <summary>The block types with a repacked layout, each used where this machine runs its kernels faster than the
/// row kernels (<see cref="IRepackedFormat.FasterHere"/>).</summary>
internal static class RepackedFormats
{
    /// <summary>Every layout, a type's preferred one first (the 16-row Q4_K and Q6_K layouts where AVX-512 runs them).</summary>
    static readonly IRepackedFormat[] All = [RepackedFormat<Q4_Kx16>.Instance, RepackedFormat<Q4_Kx8>.Instance, RepackedFormat<Q6_Kx16>.Instance, RepackedFormat<Q6_Kx8>.Instance,
        RepackedFormat<Q4_0x8>.Instance, RepackedFormat<Q8_0x8>.Instance, RepackedFormat<F16x8>.Instance, RepackedFormat<BF16x8>.Instance];

    /// <summary>The repacked layout for a rows x k matrix of `type`: the first this machine gains from that can hold
    /// the shape, or null.</summary>
    public static IRepackedFormat? For(GgmlType type, int rows, int k)
    {
        foreach (var format in All)
            if (format.Type == type && format.FasterHere && format.CanRepack(rows, k)) return format;
        return null;
    }

    /// <summary>True when this machine repacks some matrices of `type`.</summary>
    public static bool Repacks(GgmlType type) => All.Any(f => f.Type == type && f.FasterHere);
}
