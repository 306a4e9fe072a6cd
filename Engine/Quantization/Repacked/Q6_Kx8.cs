using static Engine.Quantization.QuantMath;

namespace Engine.Quantization.Repacked;

/// <summary>
/// Q6_K matrices repacked into <see cref="BlockQ6_Kx8"/> groups: rows in groups of 8, each group's super-blocks
/// consecutive (group g, super-block b at (g * k/256 + b) * BlockQ6_Kx8.Size). Activations are Q8_K, as for
/// <see cref="Q6_KFormat"/>. This class is the checked public edge (repack, unpack, dots over spans); the kernels
/// are in <see cref="Q6_Kx8Kernels"/>.
///
/// Results are not the bits of the row kernels: per row and super-block the integer sum is the same (it is
/// exact), but it is scaled and accumulated in another order (the row kernel keeps 8 partial sums in float lanes;
/// llama.cpp's repacked path also differs from its row path). All kernels here agree with <see cref="DotReference"/> to the bit.
/// </summary>
public static unsafe class Q6_Kx8
{
    /// <summary>True when a matrix of this shape can be repacked: whole groups of rows, whole super-blocks.</summary>
    public static bool CanRepack(int rows, int k) => rows > 0 && rows % BlockQ6_Kx8.Rows == 0 && k > 0 && k % QK_K == 0;

    /// <summary>Bytes of the repacked form of a rows x k matrix.</summary>
    public static long PackedBytes(int rows, int k) => (long)rows / BlockQ6_Kx8.Rows * (k / QK_K) * BlockQ6_Kx8.Size;

    /// <summary>Repacks `rows` Q6_K rows of k elements (row r at src + r * rowBytes) into dst.</summary>
    public static void Repack(ReadOnlySpan<byte> src, long rowBytes, int rows, int k, Span<byte> dst)
    {
        Check(rows, k);
        if (rowBytes < RowBytes(k) || src.Length < (rows - 1) * rowBytes + RowBytes(k))
            throw new ArgumentException($"source holds {src.Length} bytes, too few for {rows} rows of stride {rowBytes}", nameof(src));
        if (dst.Length < PackedBytes(rows, k)) throw new ArgumentException($"destination holds {dst.Length} bytes, {PackedBytes(rows, k)} needed", nameof(dst));
        fixed (byte* s = src) fixed (byte* d = dst) RepackRows(s, rowBytes, rows, k, d);
    }

    /// <summary>Row `row` of a repacked matrix of k columns, dequantized.</summary>
    public static void DequantizeRow(ReadOnlySpan<byte> packed, int k, int row, Span<float> dst)
    {
        int nb = k / QK_K;
        if (k <= 0 || k % QK_K != 0 || dst.Length < k) throw new ArgumentException("bad row length", nameof(k));
        long groupBytes = (long)nb * BlockQ6_Kx8.Size;
        if (row < 0 || (row / 8 + 1) * groupBytes > packed.Length) throw new ArgumentOutOfRangeException(nameof(row));
        fixed (byte* p = packed) fixed (float* y = dst)
        {
            var g = (BlockQ6_Kx8*)(p + row / 8 * groupBytes);
            for (int b = 0; b < nb; b++) g[b].Dequantize(row % 8, y + b * QK_K);
        }
    }

    /// <summary>The 8 results of group `group` against one token's Q8_K activations, by the scalar reference.</summary>
    public static void DotReference(ReadOnlySpan<byte> packed, int group, ReadOnlySpan<byte> activations, int k, Span<float> y8)
    {
        CheckDot(packed, group, activations, k, y8);
        fixed (byte* p = packed) fixed (byte* a = activations) fixed (float* y = y8)
            Q6_Kx8Kernels.DotReference(p + group * (long)(k / QK_K) * BlockQ6_Kx8.Size, a, k / QK_K, y);
    }

    /// <summary>As <see cref="DotReference"/> by the fastest kernel this machine runs.</summary>
    public static void Dot(ReadOnlySpan<byte> packed, int group, ReadOnlySpan<byte> activations, int k, Span<float> y8)
    {
        CheckDot(packed, group, activations, k, y8);
        fixed (byte* p = packed) fixed (byte* a = activations) fixed (float* y = y8)
            Q6_Kx8Kernels.Dot8(p + group * (long)(k / QK_K) * BlockQ6_Kx8.Size, a, k / QK_K, y);
    }

    /// <summary>The decode form: y[r] = row r . activations for the rows of groups [groupStart, groupEnd) (rows
    /// 8 * groupStart to 8 * groupEnd), y indexed by absolute row so threads can share it.</summary>
    public static void MatVec(ReadOnlySpan<byte> packed, int k, ReadOnlySpan<byte> activations, Span<float> y, int groupStart, int groupEnd)
    {
        if (k <= 0 || k % QK_K != 0) throw new ArgumentException($"k {k} is not a positive multiple of {QK_K}", nameof(k));
        long groupBytes = (long)(k / QK_K) * BlockQ6_Kx8.Size;
        if (groupStart < 0 || groupEnd < groupStart || groupEnd * groupBytes > packed.Length || 8L * groupEnd > y.Length)
            throw new ArgumentOutOfRangeException(nameof(groupEnd));
        if (activations.Length < Q6_KFormat.Instance.ActivationBytes(k)) throw new ArgumentException("activations too short", nameof(activations));
        fixed (byte* p = packed) fixed (byte* a = activations) fixed (float* yp = y)
            Q6_Kx8Kernels.MatVec(p, k, a, yp, groupStart, groupEnd);
    }

    /// <summary>The prompt form over a whole matrix: y[t * rows + r] = row r . token t for every row and every one
    /// of `tokens` activation vectors (token t's at t * ActivationBytes(k)).</summary>
    public static void MatMul(ReadOnlySpan<byte> packed, int rows, int k, ReadOnlySpan<byte> activations, int tokens, Span<float> y)
    {
        Check(rows, k);
        int actBytes = Q6_KFormat.Instance.ActivationBytes(k);
        if (packed.Length < PackedBytes(rows, k)) throw new ArgumentException("packed matrix too short", nameof(packed));
        if (activations.Length < (long)actBytes * tokens) throw new ArgumentException("activations too short", nameof(activations));
        if (y.Length < (long)rows * tokens) throw new ArgumentException("output too short", nameof(y));
        fixed (byte* p = packed) fixed (byte* a = activations) fixed (float* yp = y)
            Q6_Kx8Kernels.MatMul(p, k, a, actBytes, tokens, yp, rows, 0, rows / 8);
    }

    internal static void RepackRows(byte* src, long rowBytes, int rows, int k, byte* dst)
    {
        int nb = k / QK_K;
        var g = (BlockQ6_Kx8*)dst;
        for (int r = 0; r < rows; r += BlockQ6_Kx8.Rows)
            for (int b = 0; b < nb; b++)
                BlockQ6_Kx8.Pack(src + r * rowBytes, rowBytes, b, g++);
    }

    static long RowBytes(int k) => (long)(k / QK_K) * sizeof(BlockQ6_K);

    static void Check(int rows, int k)
    {
        if (!CanRepack(rows, k)) throw new ArgumentException($"a {rows} x {k} matrix cannot be repacked: rows must be a multiple of 8 and k of {QK_K}");
    }

    static void CheckDot(ReadOnlySpan<byte> packed, int group, ReadOnlySpan<byte> activations, int k, Span<float> y8)
    {
        if (k <= 0 || k % QK_K != 0) throw new ArgumentException($"k {k} is not a positive multiple of {QK_K}", nameof(k));
        long groupBytes = (long)(k / QK_K) * BlockQ6_Kx8.Size;
        if (group < 0 || (group + 1) * groupBytes > packed.Length) throw new ArgumentOutOfRangeException(nameof(group));
        if (activations.Length < Q6_KFormat.Instance.ActivationBytes(k)) throw new ArgumentException("activations too short", nameof(activations));
        if (y8.Length < BlockQ6_Kx8.Rows) throw new ArgumentException("8 results needed", nameof(y8));
    }
}
