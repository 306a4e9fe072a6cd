using System.Runtime.InteropServices;
using Engine.Formats;
using Engine.Models;
using Engine.Quantization;
using Engine.Quantization.Repacked;

namespace Engine.Backends.Cpu;

/// <summary>
/// The CPU backend's repacked copies of matrices (<see cref="IRepackedFormat"/>: 8 or 16 rows per group, e.g.
/// <see cref="BlockQ4_Kx8"/>), keyed by the WeightMatrix object, in native memory it owns (64-byte aligned, freed
/// on Dispose; huge pages where the system gives them, see <see cref="NativeBlocks"/>).
///
/// The source bytes are read through the file (<see cref="TensorView.ReadBytes"/>), never through the memory
/// map: touching the map would make its pages resident in this process too, and a repacked model would hold
/// its repacked weights twice. So the resident size stays about the file's size: the map's pages for the other
/// matrices plus the repacked copies (the same size as their source).
/// </summary>
internal sealed unsafe class RepackedWeights : IDisposable
{
    /// <summary>How much of a matrix is read from the file at a time.</summary>
    const long ChunkBytes = 4 << 20;

    /// <summary>A repacked matrix: its bytes and the layout they are in.</summary>
    public readonly record struct Packed(nint Bytes, IRepackedFormat Format);

    readonly Dictionary<WeightMatrix, Packed> _packed = new(ReferenceEqualityComparer.Instance);
    readonly Lock _add = new();

    /// <summary>Bytes of all repacked copies.</summary>
    public long Bytes { get; private set; }
    public int Count => _packed.Count;

    /// <summary>A matrix with a repacked layout for its type and shape (whole groups of rows of whole blocks), rows
    /// stored back to back.</summary>
    public static bool Eligible(WeightMatrix m) =>
        m.Quantized is not { FloatActivations: true } && RepackedFormats.For(m.Type, m.Rows, m.Cols) is not null && RowFormats.For(m.Type) is RowFormat rows && m.RowBytes == rows.RowBytes(m.Cols);

    public bool TryGet(WeightMatrix m, out Packed packed) => _packed.TryGetValue(m, out packed);

    /// <summary>Repacks every eligible matrix not already held, matrices spread over `threads` threads.</summary>
    public void Add(IEnumerable<WeightMatrix> matrices, int threads)
    {
        var todo = matrices.Where(m => Eligible(m) && !_packed.ContainsKey(m)).Distinct(ReferenceEqualityComparer.Instance).Cast<WeightMatrix>().ToArray();
        Parallel.ForEach(todo, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) }, () => new byte[ChunkBytes],
            (m, _, buffer) =>
            {
                var format = RepackedFormats.For(m.Type, m.Rows, m.Cols)!;
                long bytes = format.PackedBytes(m.Rows, m.Cols);
                var dst = NativeBlocks.Allocate(bytes);
                try { Repack(m, format, dst, buffer); }
                catch { NativeBlocks.Free(dst); throw; }
                // A GPTQ / AWQ layer's Q4_0 rows are computed, not mapped: drop them now that the repacked copy holds them.
                m.View.DropComputedBytes();
                lock (_add) { _packed[m] = new Packed((nint)dst, format); Bytes += bytes; }
                return buffer;
            },
            _ => { });
    }

    /// <summary>Reads the matrix in chunks of whole groups of rows and repacks each chunk into dst.</summary>
    static void Repack(WeightMatrix m, IRepackedFormat format, byte* dst, byte[] buffer)
    {
        long rowBytes = m.RowBytes;
        int groupRows = format.GroupRows;
        int chunkRows = (int)Math.Max(groupRows, buffer.Length / rowBytes / groupRows * groupRows);
        if (chunkRows * rowBytes > buffer.Length) buffer = new byte[chunkRows * rowBytes];
        long groupBytes = format.PackedBytes(groupRows, m.Cols);
        fixed (byte* src = buffer)
            for (int row = 0; row < m.Rows; row += chunkRows)
            {
                int rows = Math.Min(chunkRows, m.Rows - row);
                m.View.ReadBytes(row * rowBytes, buffer.AsSpan(0, checked((int)(rows * rowBytes))));
                format.RepackRows(src, rowBytes, rows, m.Cols, dst + row / groupRows * groupBytes);
            }
    }

    public void Dispose()
    {
        lock (_add)
        {
            foreach (var p in _packed.Values) NativeBlocks.Free((byte*)p.Bytes);
            _packed.Clear();
            Bytes = 0;
        }
    }
}
