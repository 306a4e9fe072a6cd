using Engine.Quantization;
using Engine.Convert.Model;
using Engine.Convert.Presets;
using Engine.Formats;

namespace Engine.Convert.Weights;

/// <summary>Streams the bytes of one tensor: matrices as cached encoded rows from a per-tensor starting row, norms as
/// ones, biases and the router as pool values, rope_freqs computed. Nothing larger than a cache is held.</summary>
public sealed class TensorDataWriter(NormalPool pool, ulong seed, ModelPreset preset)
{
    readonly EncodedRowCache _cache = new(pool);

    public void Write(TensorSpec t, GgmlType type, Stream output)
    {
        switch (t.Content)
        {
            case TensorContent.Weight:
                WriteRows(t, type, output, 0, t.RowCount);
                break;
            case TensorContent.Norm:
                WriteFloats(output, type, t.ElementCount, (_, span) => span.Fill(1f));
                break;
            case TensorContent.Bias or TensorContent.Router:
                long start = StartOffset(t.Name);
                WriteFloats(output, type, t.ElementCount, (at, span) => pool.CopyTo(start + at, span));
                break;
            case TensorContent.RopeFrequencies:
                var factors = Llama3RopeFactors.Compute(preset);
                WriteFloats(output, type, t.ElementCount, (at, span) => factors.AsSpan((int)at, span.Length).CopyTo(span));
                break;
            default:
                throw new InvalidOperationException($"unknown tensor content {t.Content}");
        }
    }

    /// <summary>Rows [firstRow, firstRow + rowCount) of a matrix (one expert of a stacked tensor, for instance).</summary>
    public void WriteRows(TensorSpec t, GgmlType type, Stream output, long firstRow, long rowCount)
    {
        if (t.Content != TensorContent.Weight) throw new InvalidOperationException($"{t.Name} is not a matrix of random rows");
        var rows = _cache.Get(type, t.RowLength);
        int at = (int)((StartOffset(t.Name) + firstRow) % rows.Count);
        for (long left = rowCount; left > 0;)
        {
            int n = (int)Math.Min(left, rows.Count - at);
            output.Write(rows.Bytes, (int)(at * rows.RowBytes), (int)(n * rows.RowBytes));
            left -= n;
            at = 0;
        }
    }

    /// <summary>Vector tensors (and the router) are made in chunks of floats and stored as F32 in GGUF; Hugging Face
    /// checkpoints keep them in the checkpoint's float type.</summary>
    static void WriteFloats(Stream output, GgmlType type, long count, Action<long, Span<float>> fill)
    {
        if (type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16))
            throw new InvalidOperationException($"vector tensors are stored as a float type, not {type}");
        var chunk = new float[(int)Math.Min(count, 1 << 16)];
        var bytes = new byte[RowEncoder.RowBytes(type, chunk.Length)];
        for (long at = 0; at < count; at += chunk.Length)
        {
            int n = (int)Math.Min(chunk.Length, count - at);
            fill(at, chunk.AsSpan(0, n));
            var encoded = bytes.AsSpan(0, (int)RowEncoder.RowBytes(type, n));
            RowEncoder.Encode(type, chunk.AsSpan(0, n), encoded);
            output.Write(encoded);
        }
    }

    /// <summary>Where a tensor starts in the pool: a hash of its name and the seed, so a tensor has the same values
    /// in every output type and order.</summary>
    long StartOffset(string name)
    {
        ulong h = 0xcbf29ce484222325UL ^ seed; // FNV-1a over the name, mixed with the seed
        foreach (char c in name) h = (h ^ c) * 0x100000001b3UL;
        return (long)(Xoshiro256.SplitMix64(ref h) >> 1);
    }
}
