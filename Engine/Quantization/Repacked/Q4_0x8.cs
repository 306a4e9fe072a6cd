namespace Engine.Quantization.Repacked;

/// <summary>
/// Q4_0 matrices repacked into <see cref="BlockQ4_0x8"/> groups: rows in groups of 8, each group's blocks
/// consecutive (group g, block b at (g * k/32 + b) * BlockQ4_0x8.Size). Activations are Q8_0, as for
/// <see cref="Q4_0Format"/>. This class is the checked public edge (repack, unpack, dots over spans); the kernels
/// are in <see cref="Q4_0x8Kernels"/>.
///
/// Results are not the bits of the row kernels: per row and block the integer dot is the same (it is exact),
/// but it is scaled and accumulated in another order (llama.cpp's repacked order, ggml_gemv_q4_0_8x8_q8_0:
/// one accumulator per row, acc += float(int dot) * (d_w * d_x)). All kernels here agree with
/// <see cref="DotReference"/> to the bit.
/// </summary>
public static unsafe class Q4_0x8
{
    const int QK = BlockQ4_0.QK;

    /// <summary>True when a matrix of this shape can be repacked: whole groups of rows, whole blocks.</summary>
    public static bool CanRepack(int rows, int k) => rows > 0 && rows % BlockQ4_0x8.Rows == 0 && k > 0 && k % QK == 0;

    /// <summary>Bytes of the repacked form of a rows x k matrix.</summary>
    public static long PackedBytes(int rows, int k) => (long)rows / BlockQ4_0x8.Rows * (k / QK) * BlockQ4_0x8.Size;

    /// <summary>Repacks `rows` Q4_0 rows of k elements (row r at src + r * rowBytes) into dst.</summary>
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
        int nb = k / QK;
        if (k <= 0 || k % QK != 0 || dst.Length < k) throw new ArgumentException("bad row length", nameof(k));
        long groupBytes = (long)nb * BlockQ4_0x8.Size;
        if (row < 0 || (row / 8 + 1) * groupBytes > packed.Length) throw new ArgumentOutOfRangeException(nameof(row));
        fixed (byte* p = packed) fixed (float* y = dst)
        {
            var g = (BlockQ4_0x8*)(p + row / 8 * groupBytes);
            for (int b = 0; b < nb; b++) g[b].Dequantize(row % 8, y + b * QK);
        }
    }

    /// <summary>The 8 results of group `group` against one token's Q8_0 activations, by the scalar reference.</summary>
    public static void DotReference(ReadOnlySpan<byte> packed, int group, ReadOnlySpan<byte> activations, int k, Span<float> y8)
    {
        CheckDot(packed, group, activations, k, y8);
        fixed (byte* p = packed) fixed (byte* a = activations) fixed (float* y = y8)
            Q4_0x8Kernels.DotReference(p + group * (long)(k / QK) * BlockQ4_0x8.Size, a, k / QK, y);
    }

    /// <summary>As <see cref="DotReference"/> by the fastest kernel this machine runs.</summary>
    public static void Dot(ReadOnlySpan<byte> packed, int group, ReadOnlySpan<byte> activations, int k, Span<float> y8)
    {
        CheckDot(packed, group, activations, k, y8);
        fixed (byte* p = packed) fixed (byte* a = activations) fixed (float* y = y8)
            Q4_0x8Kernels.MatVec(p + group * (long)(k / QK) * BlockQ4_0x8.Size, k, a, y, 0, 1);
    }

    /// <summary>The decode form: y[r] = row r . activations for the rows of groups [groupStart, groupEnd) (rows
    /// 8 * groupStart to 8 * groupEnd), y indexed by absolute row so threads can share it.</summary>
    public static void MatVec(ReadOnlySpan<byte> packed, int k, ReadOnlySpan<byte> activations, Span<float> y, int groupStart, int groupEnd)
    {
        if (k <= 0 || k % QK != 0) throw new ArgumentException($"k {k} is not a positive multiple of {QK}", nameof(k));
        long groupBytes = (long)(k / QK) * BlockQ4_0x8.Size;
        if (groupStart < 0 || groupEnd < groupStart || groupEnd * groupBytes > packed.Length || 8L * groupEnd > y.Length)
            throw new ArgumentOutOfRangeException(nameof(groupEnd));
        if (activations.Length < Q4_0Format.Instance.ActivationBytes(k)) throw new ArgumentException("activations too short", nameof(activations));
        fixed (byte* p = packed) fixed (byte* a = activations) fixed (float* yp = y)
            Q4_0x8Kernels.MatVec(p, k, a, yp, groupStart, groupEnd);
    }

    /// <summary>The prompt form over a whole matrix: y[t * rows + r] = row r . token t for every row and every one
    /// of `tokens` activation vectors (token t's at t * ActivationBytes(k)).</summary>
    public static void MatMul(ReadOnlySpan<byte> packed, int rows, int k, ReadOnlySpan<byte> activations, int tokens, Span<float> y)
        => MatMul(packed, rows, k, activations, tokens, y, 0, rows / 8);

    /// <summary>As above for the groups [groupStart, groupEnd) only (rows 8 * groupStart to 8 * groupEnd; y still
    /// has rows values per token), so threads can share a matrix.</summary>
    public static void MatMul(ReadOnlySpan<byte> packed, int rows, int k, ReadOnlySpan<byte> activations, int tokens, Span<float> y, int groupStart, int groupEnd)
    {
        if (groupStart < 0 || groupEnd < groupStart || 8L * groupEnd > rows) throw new ArgumentOutOfRangeException(nameof(groupEnd));
        Check(rows, k);
        int actBytes = Q4_0Format.Instance.ActivationBytes(k);
        if (packed.Length < PackedBytes(rows, k)) throw new ArgumentException("packed matrix too short", nameof(packed));
        if (activations.Length < (long)actBytes * tokens) throw new ArgumentException("activations too short", nameof(activations));
        if (y.Length < (long)rows * tokens) throw new ArgumentException("output too short", nameof(y));
        fixed (byte* p = packed) fixed (byte* a = activations) fixed (float* yp = y)
            Q4_0x8Kernels.MatMul(p, k, a, actBytes, tokens, yp, rows, groupStart, groupEnd);
    }

    internal static void RepackRows(byte* src, long rowBytes, int rows, int k, byte* dst)
    {
        int nb = k / QK;
        var g = (BlockQ4_0x8*)dst;
        for (int r = 0; r < rows; r += BlockQ4_0x8.Rows)
            for (int b = 0; b < nb; b++)
                BlockQ4_0x8.Pack(src + r * rowBytes, rowBytes, b, g++);
    }

    static long RowBytes(int k) => (long)(k / QK) * sizeof(BlockQ4_0);

    static void Check(int rows, int k)
    {
        if (!CanRepack(rows, k)) throw new ArgumentException($"a {rows} x {k} matrix cannot be repacked: rows must be a multiple of 8 and k of {QK}");
    }

    static void CheckDot(ReadOnlySpan<byte> packed, int group, ReadOnlySpan<byte> activations, int k, Span<float> y8)
    {
        if (k <= 0 || k % QK != 0) throw new ArgumentException($"k {k} is not a positive multiple of {QK}", nameof(k));
        long groupBytes = (long)(k / QK) * BlockQ4_0x8.Size;
        if (group < 0 || (group + 1) * groupBytes > packed.Length) throw new ArgumentOutOfRangeException(nameof(group));
        if (activations.Length < Q4_0Format.Instance.ActivationBytes(k)) throw new ArgumentException("activations too short", nameof(activations));
        if (y8.Length < BlockQ4_0x8.Rows) throw new ArgumentException("8 results needed", nameof(y8));
    }
}
