using System.Runtime.CompilerServices;
using Engine.Formats;

namespace Engine.Quantization;

/// <summary>
/// Shared plumbing for every format: argument checks at the public edge, pinning, then pointer cores that
/// each type implements. Nothing is checked inside the cores (the loops), so callers inside this assembly
/// must pass valid extents.
/// </summary>
internal abstract unsafe class RowFormat : IRowFormat
{
    readonly int _actBlockSize, _actBytesPerBlock;

    private protected RowFormat(GgmlType type, GgmlType activationType)
    {
        var info = type.Info();
        var act = activationType.Info();
        Type = type;
        BlockSize = info.BlockSize;
        BytesPerBlock = info.BytesPerBlock;
        ActivationType = activationType;
        _actBlockSize = act.BlockSize;
        _actBytesPerBlock = act.BytesPerBlock;
    }

    public GgmlType Type { get; }
    public int BlockSize { get; }
    public int BytesPerBlock { get; }
    public GgmlType ActivationType { get; }

    /// <summary>Bytes of one row of k elements.</summary>
    public long RowBytes(int k) => (long)(k / BlockSize) * BytesPerBlock;

    public int ActivationBytes(int k)
    {
        CheckK(k);
        return k / _actBlockSize * _actBytesPerBlock;
    }

    public void DequantizeRowReference(ReadOnlySpan<byte> row, Span<float> dst)
    {
        CheckRow(row, dst.Length);
        fixed (byte* r = row) fixed (float* d = dst) DequantizeReferenceCore(r, d, dst.Length);
    }

    public void DequantizeRow(ReadOnlySpan<byte> row, Span<float> dst)
    {
        CheckRow(row, dst.Length);
        fixed (byte* r = row) fixed (float* d = dst) DequantizeCore(r, d, dst.Length);
    }

    public void QuantizeActivations(ReadOnlySpan<float> x, Span<byte> dst)
    {
        int need = ActivationBytes(x.Length);
        if (dst.Length < need) throw new ArgumentException($"activation buffer holds {dst.Length} bytes, {need} needed", nameof(dst));
        fixed (float* s = x) fixed (byte* d = dst) QuantizeActivationsCore(s, d, x.Length);
    }

    public float DotRowReference(ReadOnlySpan<byte> row, ReadOnlySpan<byte> activations, int k)
    {
        CheckDot(row, activations, k);
        fixed (byte* r = row) fixed (byte* a = activations) return DotReferenceCore(r, a, k);
    }

    public float DotRow(ReadOnlySpan<byte> row, ReadOnlySpan<byte> activations, int k)
    {
        CheckDot(row, activations, k);
        fixed (byte* r = row) fixed (byte* a = activations) return DotCore(r, a, k);
    }

    private protected abstract void DequantizeReferenceCore(byte* row, float* dst, int k);
    private protected virtual void DequantizeCore(byte* row, float* dst, int k) => DequantizeReferenceCore(row, dst, k);
    private protected abstract void QuantizeActivationsCore(float* x, byte* dst, int k);
    private protected abstract float DotReferenceCore(byte* row, byte* act, int k);
    private protected abstract float DotCore(byte* row, byte* act, int k);

    /// <summary>y[r] = row r . activations for r in [rowStart, rowEnd). One virtual call per range; a format
    /// may override to share activation loads across rows.</summary>
    internal virtual void MatVecCore(byte* weights, long rowBytes, int k, byte* act, float* y, int rowStart, int rowEnd)
    {
        for (int r = rowStart; r < rowEnd; r++)
            y[r] = DotCore(weights + r * rowBytes, act, k);
    }

    void CheckK(int k)
    {
        if (k < 0 || k % BlockSize != 0 || k % _actBlockSize != 0)
            throw new ArgumentException($"{Type}: row length {k} is not a multiple of the block size {Math.Max(BlockSize, _actBlockSize)}", nameof(k));
    }

    void CheckRow(ReadOnlySpan<byte> row, int k)
    {
        CheckK(k);
        if (row.Length < RowBytes(k)) throw new ArgumentException($"{Type}: row holds {row.Length} bytes, {RowBytes(k)} needed for {k} elements", nameof(row));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void CheckDot(ReadOnlySpan<byte> row, ReadOnlySpan<byte> act, int k)
    {
        CheckRow(row, k);
        if (act.Length < ActivationBytes(k)) throw new ArgumentException($"{Type}: activations hold {act.Length} bytes, {ActivationBytes(k)} needed for {k} elements", nameof(act));
    }

    /// <summary>The prompt-processing form: y[t * yStride + r] = row r . activations of token t, for every token
    /// of the batch and r in [rowStart, rowEnd). The default runs <see cref="MatVecCore"/> once per token;
    /// a format overrides it to decode each weight block once for several tokens. Overrides must give every
    /// (row, token) exactly the bits DotCore gives, so prefill and decode agree and both match llama.cpp.</summary>
    internal virtual void MatMulCore(byte* weights, long rowBytes, int k, byte* acts, int actStride, int tokens,
        float* y, int yStride, int rowStart, int rowEnd) =>
        MatVecEachToken(weights, rowBytes, k, acts, actStride, 0, tokens, y, yStride, rowStart, rowEnd);

    /// <summary>Tokens [firstToken, tokens) one at a time through <see cref="MatVecCore"/>.</summary>
    private protected void MatVecEachToken(byte* weights, long rowBytes, int k, byte* acts, int actStride, int firstToken, int tokens,
        float* y, int yStride, int rowStart, int rowEnd)
    {
        for (int t = firstToken; t < tokens; t++)
            MatVecCore(weights, rowBytes, k, acts + (long)t * actStride, y + (long)t * yStride, rowStart, rowEnd);
    }

    /// <summary>A kernel that multiplies one weight row by four tokens' activations at once:
    /// dot4(row, firstActivation, activationStride, k, y, yStride) writes y[0], y[yStride], y[2y], y[3y].</summary>
    private protected void MatMulInGroupsOfFour(byte* weights, long rowBytes, int k, byte* acts, int actStride, int tokens,
        float* y, int yStride, int rowStart, int rowEnd, delegate*<byte*, byte*, int, int, float*, int, void> dot4)
    {
        int t = 0;
        for (; t + 4 <= tokens; t += 4)
            for (int r = rowStart; r < rowEnd; r++)
                dot4(weights + r * rowBytes, acts + (long)t * actStride, actStride, k, y + (long)t * yStride + r, yStride);
        MatVecEachToken(weights, rowBytes, k, acts, actStride, t, tokens, y, yStride, rowStart, rowEnd);
    }

    internal void CheckMatVec(long rowBytes, int k, int activationLength, int yLength, int rowStart, int rowEnd)
    {
        CheckK(k);
        if (rowBytes < RowBytes(k)) throw new ArgumentException($"{Type}: row stride {rowBytes} is less than a row ({RowBytes(k)} bytes)", nameof(rowBytes));
        if (activationLength < ActivationBytes(k)) throw new ArgumentException($"{Type}: activations hold {activationLength} bytes, {ActivationBytes(k)} needed", "activations");
        if (rowStart < 0 || rowEnd < rowStart || rowEnd > yLength) throw new ArgumentOutOfRangeException(nameof(rowEnd), $"rows [{rowStart}, {rowEnd}) do not fit an output of {yLength}");
    }
}
