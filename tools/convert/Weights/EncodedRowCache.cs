using Engine.Quantization;
using System.Collections.Concurrent;
using Engine.Formats;

namespace Engine.Convert.Weights;

/// <summary>Rows cut from the pool and already encoded, per (type, row length): a tensor is then written by copying
/// cached rows, so a multi-GB model costs a few small quantizations plus disk bandwidth. Row i of a cache holds the
/// pool values from i * rowLength on; there are enough rows to cover the pool once (at least
/// <see cref="MinimumRows"/>), so a tensor repeats its values only every few thousand rows.</summary>
public sealed class EncodedRowCache(NormalPool pool)
{
    public const int MinimumRows = 64;

    public sealed record Rows(GgmlType Type, long RowLength, int Count, long RowBytes, byte[] Bytes);

    readonly ConcurrentDictionary<(GgmlType, long), Rows> _rows = new();

    public Rows Get(GgmlType type, long rowLength) => _rows.GetOrAdd((type, rowLength), key => Build(key.Item1, key.Item2));

    Rows Build(GgmlType type, long rowLength)
    {
        int count = (int)Math.Max(MinimumRows, pool.Length / rowLength);
        long rowBytes = RowEncoder.RowBytes(type, rowLength);
        var bytes = new byte[checked(count * rowBytes)];
        // Rows are independent, so they quantize in parallel; the result does not depend on the thread count.
        Parallel.For(0, count, () => new float[rowLength], (i, _, scratch) =>
        {
            pool.CopyTo(i * rowLength, scratch);
            RowEncoder.Encode(type, scratch, bytes.AsSpan((int)(i * rowBytes), (int)rowBytes));
            return scratch;
        }, _ => { });
        return new Rows(type, rowLength, count, rowBytes, bytes);
    }
}
