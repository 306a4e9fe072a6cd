using Engine.Formats;

namespace Engine.Quantization.Repacked;

/// <summary>What a repacked block type supplies: its block geometry (rows per group, 8 or 16), how one group block is
/// packed from and unpacked to its rows, and its kernels. <see cref="RepackedMatrix{TLayout}"/> builds the checked edge on it.</summary>
internal unsafe interface IRepackedLayout
{
    /// <summary>Elements per block (256 for k-quants, 32 for Q4_0).</summary>
    static abstract int BlockWidth { get; }
    /// <summary>Rows per group: 8, or 16 for a layout whose 512-bit vectors hold 4 bytes of each of 16 rows.</summary>
    static virtual int GroupRows => 8;
    /// <summary>Bytes of one block of a group's rows.</summary>
    static abstract int GroupBlockBytes { get; }
    /// <summary>The source rows' format (row size, activation format).</summary>
    static abstract RowFormat Source { get; }
    /// <summary>Whether this machine runs the layout's kernels faster than the row kernels: by default wherever the
    /// AVX2 + FMA fast paths run (without them the row kernels, Vector128 included, win).</summary>
    static virtual bool FasterHere => Simd.Avx2Fma;
    static abstract void PackBlock(byte* src, long rowBytes, int block, byte* dst);
    static abstract void DequantizeBlock(byte* groupBlock, int row, float* dst);
    static abstract void DotReference(byte* group, byte* act, int nb, float* y);
    static abstract void DotGroup(byte* group, byte* act, int nb, float* y);
    static abstract void MatVec(byte* packed, int k, byte* act, float* y, int groupStart, int groupEnd);
    static abstract void MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd);
}

/// <summary>
/// The checked public edge of a repacked layout (repack, unpack, dots over spans), the same for every block type:
/// rows in groups of GroupRows, each group's blocks consecutive (group g, block b at (g * k/BlockWidth + b) *
/// GroupBlockBytes). A type's class derives from this, so its members read as Q4_Kx8.Repack, Q6_Kx8.Dot, ...
/// </summary>
internal abstract unsafe class RepackedMatrix<TLayout> where TLayout : IRepackedLayout
{
    private protected RepackedMatrix() { }

    static int Rows => TLayout.GroupRows;
    static int BlockWidth => TLayout.BlockWidth;

    /// <summary>True when a matrix of this shape can be repacked: whole groups of rows, whole blocks.</summary>
    public static bool CanRepack(int rows, int k) => rows > 0 && rows % Rows == 0 && k > 0 && k % BlockWidth == 0;

    /// <summary>Bytes of the repacked form of a rows x k matrix.</summary>
    public static long PackedBytes(int rows, int k) => (long)rows / Rows * (k / BlockWidth) * TLayout.GroupBlockBytes;

    /// <summary>Repacks `rows` source rows of k elements (row r at src + r * rowBytes) into dst.</summary>
    public static void Repack(ReadOnlySpan<byte> src, long rowBytes, int rows, int k, Span<byte> dst)
    {
        Check(rows, k);
        long sourceRow = TLayout.Source.RowBytes(k);
        if (rowBytes < sourceRow || src.Length < (rows - 1) * rowBytes + sourceRow)
            throw new ArgumentException($"source holds {src.Length} bytes, too few for {rows} rows of stride {rowBytes}", nameof(src));
        if (dst.Length < PackedBytes(rows, k)) throw new ArgumentException($"destination holds {dst.Length} bytes, {PackedBytes(rows, k)} needed", nameof(dst));
        fixed (byte* s = src) fixed (byte* d = dst) RepackRows(s, rowBytes, rows, k, d);
    }

    /// <summary>Row `row` of a repacked matrix of k columns, dequantized.</summary>
    public static void DequantizeRow(ReadOnlySpan<byte> packed, int k, int row, Span<float> dst)
    {
        int nb = k / BlockWidth;
        if (k <= 0 || k % BlockWidth != 0 || dst.Length < k) throw new ArgumentException("bad row length", nameof(k));
        long groupBytes = (long)nb * TLayout.GroupBlockBytes;
        if (row < 0 || (row / Rows + 1) * groupBytes > packed.Length) throw new ArgumentOutOfRangeException(nameof(row));
        fixed (byte* p = packed) fixed (float* y = dst)
        {
            byte* group = p + row / Rows * groupBytes;
            for (int b = 0; b < nb; b++) TLayout.DequantizeBlock(group + b * TLayout.GroupBlockBytes, row % Rows, y + b * BlockWidth);
        }
    }

    /// <summary>The GroupRows results of group `group` against one token's activations, by the scalar reference.</summary>
    public static void DotReference(ReadOnlySpan<byte> packed, int group, ReadOnlySpan<byte> activations, int k, Span<float> y8)
    {
        CheckDot(packed, group, activations, k, y8);
        fixed (byte* p = packed) fixed (byte* a = activations) fixed (float* y = y8)
            TLayout.DotReference(p + group * (long)(k / BlockWidth) * TLayout.GroupBlockBytes, a, k / BlockWidth, y);
    }

    /// <summary>As <see cref="DotReference"/> by the fastest kernel this machine runs.</summary>
    public static void Dot(ReadOnlySpan<byte> packed, int group, ReadOnlySpan<byte> activations, int k, Span<float> y8)
    {
        CheckDot(packed, group, activations, k, y8);
        fixed (byte* p = packed) fixed (byte* a = activations) fixed (float* y = y8)
            TLayout.DotGroup(p + group * (long)(k / BlockWidth) * TLayout.GroupBlockBytes, a, k / BlockWidth, y);
    }

    /// <summary>The decode form: y[r] = row r . activations for the rows of groups [groupStart, groupEnd) (rows
    /// GroupRows * groupStart to GroupRows * groupEnd), y indexed by absolute row so threads can share it.</summary>
    public static void MatVec(ReadOnlySpan<byte> packed, int k, ReadOnlySpan<byte> activations, Span<float> y, int groupStart, int groupEnd)
    {
        if (k <= 0 || k % BlockWidth != 0) throw new ArgumentException($"k {k} is not a positive multiple of {BlockWidth}", nameof(k));
        long groupBytes = (long)(k / BlockWidth) * TLayout.GroupBlockBytes;
        if (groupStart < 0 || groupEnd < groupStart || groupEnd * groupBytes > packed.Length || (long)Rows * groupEnd > y.Length)
            throw new ArgumentOutOfRangeException(nameof(groupEnd));
        if (activations.Length < TLayout.Source.ActivationBytes(k)) throw new ArgumentException("activations too short", nameof(activations));
        fixed (byte* p = packed) fixed (byte* a = activations) fixed (float* yp = y)
            TLayout.MatVec(p, k, a, yp, groupStart, groupEnd);
    }

    /// <summary>The prompt form over a whole matrix: y[t * rows + r] = row r . token t for every row and every one
    /// of `tokens` activation vectors (token t's at t * ActivationBytes(k)).</summary>
    public static void MatMul(ReadOnlySpan<byte> packed, int rows, int k, ReadOnlySpan<byte> activations, int tokens, Span<float> y)
        => MatMul(packed, rows, k, activations, tokens, y, 0, rows / Rows);

    /// <summary>As above for the groups [groupStart, groupEnd) only (rows GroupRows * groupStart to GroupRows * groupEnd; y still
    /// has rows values per token), so threads can share a matrix.</summary>
    public static void MatMul(ReadOnlySpan<byte> packed, int rows, int k, ReadOnlySpan<byte> activations, int tokens, Span<float> y, int groupStart, int groupEnd)
    {
        Check(rows, k);
        if (groupStart < 0 || groupEnd < groupStart || (long)Rows * groupEnd > rows) throw new ArgumentOutOfRangeException(nameof(groupEnd));
        int actBytes = TLayout.Source.ActivationBytes(k);
        if (packed.Length < PackedBytes(rows, k)) throw new ArgumentException("packed matrix too short", nameof(packed));
        if (activations.Length < (long)actBytes * tokens) throw new ArgumentException("activations too short", nameof(activations));
        if (y.Length < (long)rows * tokens) throw new ArgumentException("output too short", nameof(y));
        fixed (byte* p = packed) fixed (byte* a = activations) fixed (float* yp = y)
            TLayout.MatMul(p, k, a, actBytes, tokens, yp, rows, groupStart, groupEnd);
    }

    internal static void RepackRows(byte* src, long rowBytes, int rows, int k, byte* dst)
    {
        int nb = k / BlockWidth;
        for (int r = 0; r < rows; r += Rows)
            for (int b = 0; b < nb; b++, dst += TLayout.GroupBlockBytes)
                TLayout.PackBlock(src + r * rowBytes, rowBytes, b, dst);
    }

    static void Check(int rows, int k)
    {
        if (!CanRepack(rows, k)) throw new ArgumentException($"a {rows} x {k} matrix cannot be repacked: rows must be a multiple of {Rows} and k of {BlockWidth}");
    }

    static void CheckDot(ReadOnlySpan<byte> packed, int group, ReadOnlySpan<byte> activations, int k, Span<float> y8)
    {
        if (k <= 0 || k % BlockWidth != 0) throw new ArgumentException($"k {k} is not a positive multiple of {BlockWidth}", nameof(k));
        long groupBytes = (long)(k / BlockWidth) * TLayout.GroupBlockBytes;
        if (group < 0 || (group + 1) * groupBytes > packed.Length) throw new ArgumentOutOfRangeException(nameof(group));
        if (activations.Length < TLayout.Source.ActivationBytes(k)) throw new ArgumentException("activations too short", nameof(activations));
        if (y8.Length < Rows) throw new ArgumentException($"{Rows} results needed", nameof(y8));
    }
}

/// <summary>Any <see cref="IRepackedLayout"/> behind the backend's <see cref="IRepackedFormat"/>.</summary>
internal sealed unsafe class RepackedFormat<TLayout> : IRepackedFormat where TLayout : IRepackedLayout
{
    public static readonly RepackedFormat<TLayout> Instance = new();
    public GgmlType Type => TLayout.Source.Type;
    public int GroupRows => TLayout.GroupRows;
    public bool FasterHere => TLayout.FasterHere;
    public bool CanRepack(int rows, int k) => RepackedMatrix<TLayout>.CanRepack(rows, k);
    public long PackedBytes(int rows, int k) => RepackedMatrix<TLayout>.PackedBytes(rows, k);
    public void RepackRows(byte* src, long rowBytes, int rows, int k, byte* dst) => RepackedMatrix<TLayout>.RepackRows(src, rowBytes, rows, k, dst);
    public void MatVec(byte* packed, int k, byte* act, float* y, int groupStart, int groupEnd) => TLayout.MatVec(packed, k, act, y, groupStart, groupEnd);
    public void MatMul(byte* packed, int k, byte* acts, int actStride, int tokens, float* y, int yStride, int groupStart, int groupEnd) =>
        TLayout.MatMul(packed, k, acts, actStride, tokens, y, yStride, groupStart, groupEnd);
}
