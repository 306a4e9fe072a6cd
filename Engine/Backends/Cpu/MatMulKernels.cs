using System.Numerics.Tensors;
using Engine.Formats;
using Engine.Models;
using Engine.Quantization;
using Engine.Quantization.Repacked;

namespace Engine.Backends.Cpu;

/// <summary>y = W x over batches of tokens, reading W in place from the memory map. The output rows of W are
/// split across the workers; each worker walks its rows in small tiles and multiplies every token of the
/// batch by a tile while it is in cache, so a batch reads the weights from memory once.
/// For quantized W, each token's activations are first quantized to the type's activation format (as
/// llama.cpp does) so the dot products run on integers. Matrices the backend holds repacked (Q4_K, Q6_K, Q4_0, F16, BF16 in groups
/// of 8 or 16 rows, see <see cref="RepackedWeights"/>) run the group kernels, split over the workers in whole groups.</summary>
internal sealed unsafe class MatMulKernels
{
    readonly WorkSplit split;

    public MatMulKernels(WorkSplit split)
    {
        this.split = split;
        _floatActivationRows = new FloatActivationRowsWork(split.Workers);
    }

    const int RowTile = 16;
    const int GroupTileRows = 16; // the smallest piece of a repacked matrix a worker takes: 2 groups of 8 rows or 1 of 16
    byte[] _activations = [];
    readonly FloatRowsWork _floatRows = new();
    readonly QuantizeWork _quantize = new();
    readonly QuantRowsWork _quantRows = new();
    readonly RepackedRowsWork _repackedRows = new();
    readonly FloatActivationRowsWork _floatActivationRows;
    readonly ZeroPointWork _zeroPoints = new();
    float[] _gathered = [];
    float[] _groupSums = [];
    byte[] _lookupRow = [];

    /// <summary>Repacked copies of some matrices, used in place of the map; null for none.</summary>
    internal RepackedWeights? Repacked { get; set; }

    /// <summary>Bytes of the quantized-activation buffer, grown to the widest batch seen so far.</summary>
    public long ActivationBufferBytes => _activations.Length;

    public void MatMul(WeightMatrix w, float[] x, int tokens, float[] y)
    {
        if (w.Quantized is { } linear) QuantizedLinearMatMul(w, linear, x, tokens, y);
        else WeightMatMul(w, x, tokens, y);
    }

    /// <summary>A GPTQ / AWQ linear (its rows are Q4_0, see <see cref="QuantizedLinear"/>): the input read in the
    /// matrix's column order, the Q4_0 product with quantized or float activations, then the zero-point term
    /// Σ_g s·(8 − z)·Σ_group(x) per row.</summary>
    void QuantizedLinearMatMul(WeightMatrix w, QuantizedLinear linear, float[] x, int tokens, float[] y)
    {
        int k = w.Cols, n = w.Rows;
        var input = x;
        if (linear.InputOrder is { } order)
        {
            if (_gathered.Length < k * tokens) _gathered = new float[checked(k * tokens)];
            for (int t = 0; t < tokens; t++)
            {
                var from = x.AsSpan(t * k, k);
                var to = _gathered.AsSpan(t * k, k);
                for (int j = 0; j < to.Length; j++) to[j] = from[order[j]];
            }
            input = _gathered;
        }
        // The zero-point term is added by the matmul's own workers, to the rows each has just written: a pass of its
        // own would cost a second hand-off to the workers per matmul, which under load weighs more than the work.
        ZeroPointWork? zeroPoints = null;
        if (linear.ZeroCorrection is { } terms)
        {
            int width = linear.GroupColumns, groups = k / width;
            if (_groupSums.Length < groups * tokens) _groupSums = new float[checked(groups * tokens)];
            for (int t = 0; t < tokens; t++)
                for (int g = 0; g < groups; g++)
                    _groupSums[t * groups + g] = TensorPrimitives.Sum(input.AsSpan(t * k + g * width, width));
            zeroPoints = _zeroPoints;
            zeroPoints.Terms = terms; zeroPoints.Sums = _groupSums; zeroPoints.Groups = groups; zeroPoints.N = n; zeroPoints.Tokens = tokens; zeroPoints.Y = y;
        }
        if (linear.FloatActivations)
        {
            var f = _floatActivationRows;
            f.Weights = w.View.Pointer; f.RowBytes = w.RowBytes; f.Format = RowFormats.For(w.Type); f.K = k; f.N = n; f.Tokens = tokens; f.X = input; f.Y = y;
            f.ZeroPoints = zeroPoints;
            split.For(n, RowTile, f);
            f.ZeroPoints = null;
        }
        else WeightMatMul(w, input, tokens, y, zeroPoints);
    }

    void WeightMatMul(WeightMatrix w, float[] x, int tokens, float[] y, ZeroPointWork? zeroPoints = null)
    {
        int k = w.Cols, n = w.Rows;
        if (w.Type == GgmlType.F32)
        {
            // Float weights need no activation format: a SIMD dot straight from the map.
            var f = _floatRows;
            f.Weights = w.View.Pointer; f.RowBytes = w.RowBytes; f.K = k; f.N = n; f.Tokens = tokens; f.X = x; f.Y = y;
            split.For(n, RowTile, f);
            return;
        }
        var format = RowFormats.For(w.Type);
        int actBytes = format.ActivationBytes(k);
        if (_activations.Length < (long)actBytes * tokens) _activations = new byte[checked(actBytes * tokens)];

        var q = _quantize;
        q.Format = format; q.K = k; q.ActBytes = actBytes; q.X = x; q.Activations = _activations;
        split.For(tokens, 4, q);

        if (Repacked is { } repacked && repacked.TryGet(w, out var packed))
        {
            var g = _repackedRows;
            g.Packed = (byte*)packed.Bytes; g.Format = packed.Format; g.K = k; g.N = n; g.Tokens = tokens; g.ActBytes = actBytes; g.Activations = _activations; g.Y = y;
            g.ZeroPoints = zeroPoints;
            int groupRows = packed.Format.GroupRows;
            split.For(n / groupRows, Math.Max(1, GroupTileRows / groupRows), g);
            g.ZeroPoints = null;
            return;
        }

        var r = _quantRows;
        r.Format = format; r.Weights = w.View.Pointer; r.RowBytes = w.RowBytes; r.K = k; r.N = n; r.Tokens = tokens;
        r.ActBytes = actBytes; r.Activations = _activations; r.Y = y;
        r.ZeroPoints = zeroPoints;
        split.For(n, RowTile, r);
        r.ZeroPoints = null;
    }

    /// <summary>Row `row` of W as float32 (the embedding lookup).</summary>
    public void DequantizeRow(WeightMatrix w, int row, Span<float> dst)
    {
        if ((uint)row >= (uint)w.Rows) throw new ArgumentOutOfRangeException(nameof(row), $"token id {row} is outside the vocabulary of {w.Rows}");
        ReadOnlySpan<byte> bytes;
        if (w.View.IsComputed && !w.View.HoldsComputedBytes)
        {
            // Computed rows the backend holds only repacked (a GPTQ folder's rounded head, tied to the embedding): make
            // this one row, rather than the whole matrix again beside the repacked copy.
            if (_lookupRow.Length < w.RowBytes) _lookupRow = new byte[w.RowBytes];
            w.View.ReadBytes(row * w.RowBytes, _lookupRow.AsSpan(0, (int)w.RowBytes));
            bytes = _lookupRow.AsSpan(0, (int)w.RowBytes);
        }
        else bytes = new ReadOnlySpan<byte>(w.View.Pointer + row * w.RowBytes, checked((int)w.RowBytes));
        RowFormats.For(w.Type).DequantizeRow(bytes, dst);
    }

    sealed class FloatRowsWork : IRangeWork
    {
        public byte* Weights; public long RowBytes; public int K, N, Tokens; public float[] X = [], Y = [];

        public void Execute(int start, int end, int worker)
        {
            for (int r = start; r < end; r++)
            {
                var row = new ReadOnlySpan<float>(Weights + r * RowBytes, K);
                for (int t = 0; t < Tokens; t++)
                    Y[t * N + r] = TensorPrimitives.Dot(row, X.AsSpan(t * K, K));
            }
        }
    }

    /// <summary>Rows dequantized to float (one row buffer per worker) and dotted with float activations: exact.</summary>
    sealed class FloatActivationRowsWork(int workers) : IRangeWork
    {
        public byte* Weights; public long RowBytes; public IRowFormat Format = null!; public int K, N, Tokens; public float[] X = [], Y = [];
        public ZeroPointWork? ZeroPoints;
        readonly float[][] _rows = new float[workers][];

        public void Execute(int start, int end, int worker)
        {
            var row = _rows[worker] is { } held && held.Length >= K ? held : _rows[worker] = new float[K];
            var values = row.AsSpan(0, K);
            for (int r = start; r < end; r++)
            {
                Format.DequantizeRow(new ReadOnlySpan<byte>(Weights + r * RowBytes, checked((int)RowBytes)), values);
                for (int t = 0; t < Tokens; t++)
                    Y[t * N + r] = TensorPrimitives.Dot(values, X.AsSpan(t * K, K));
            }
            ZeroPoints?.Execute(start, end, worker);
        }
    }

    /// <summary>y[t, r] += Σ_g terms[r, g] · sums[t, g]: the zero points of a GPTQ / AWQ linear, for rows [start, end),
    /// run by the worker that has just written those rows.</summary>
    sealed class ZeroPointWork : IRangeWork
    {
        public float[] Terms = [], Sums = [], Y = []; public int Groups, N, Tokens;

        public void Execute(int start, int end, int worker)
        {
            for (int r = start; r < end; r++)
            {
                var terms = Terms.AsSpan(r * Groups, Groups);
                for (int t = 0; t < Tokens; t++)
                    Y[t * N + r] += TensorPrimitives.Dot(terms, Sums.AsSpan(t * Groups, Groups));
            }
        }
    }

    sealed class QuantizeWork : IRangeWork
    {
        public IRowFormat Format = null!; public int K, ActBytes; public float[] X = []; public byte[] Activations = [];

        public void Execute(int start, int end, int worker)
        {
            for (int t = start; t < end; t++)
                Format.QuantizeActivations(X.AsSpan(t * K, K), Activations.AsSpan(t * ActBytes, ActBytes));
        }
    }

    sealed class QuantRowsWork : IRangeWork
    {
        public IRowFormat Format = null!; public byte* Weights; public long RowBytes; public int K, N, Tokens, ActBytes;
        public byte[] Activations = []; public float[] Y = [];
        public ZeroPointWork? ZeroPoints;

        public void Execute(int start, int end, int worker)
        {
            // A tile of rows stays in cache while every token of the batch passes over it.
            for (int tile = start; tile < end; tile += RowTile)
            {
                int tileEnd = Math.Min(end, tile + RowTile);
                RowFormats.MatMulRows(Format, Weights, RowBytes, K, Activations.AsSpan(0, Tokens * ActBytes), ActBytes, Tokens,
                    Y.AsSpan(0, Tokens * N), N, tile, tileEnd);
            }
            ZeroPoints?.Execute(start, end, worker);
        }
    }

    sealed class RepackedRowsWork : IRangeWork
    {
        public byte* Packed; public IRepackedFormat Format = null!; public int K, N, Tokens, ActBytes; public byte[] Activations = []; public float[] Y = [];
        public ZeroPointWork? ZeroPoints;

        public void Execute(int start, int end, int worker)
        {
            fixed (byte* a = Activations) fixed (float* y = Y)
            {
                if (Tokens == 1) Format.MatVec(Packed, K, a, y, start, end);
                else Format.MatMul(Packed, K, a, ActBytes, Tokens, y, N, start, end);
            }
            int groupRows = Format.GroupRows; // start and end count groups of rows
            ZeroPoints?.Execute(start * groupRows, end * groupRows, worker);
        }
    }
}
