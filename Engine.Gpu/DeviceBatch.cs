using Engine.Backends;
using Engine.Models;
using ILGPU;

namespace Engine.Gpu;

/// <summary>A <see cref="ForwardBatch"/>'s rows on the device: what RoPE, the KV stores and attention read.</summary>
internal readonly record struct DeviceBatchView(
    ArrayView<int> Tokens,      // per row: its token id (the embedding reads it)
    ArrayView<int> Positions,   // per row: its position in its sequence
    ArrayView<int> Slots,       // per row: block * BlockTokens + position % BlockTokens
    ArrayView<int> RowSequence, // per row: its sequence
    ArrayView<int> TableStart,  // per sequence: where its block table starts in Tables
    ArrayView<int> Tables);     // the block tables, each cut to the blocks its rows reach

/// <summary>
/// Copies the host arrays of a <see cref="ForwardBatch"/> to the device once per step: the first operation of a
/// step that needs them (the embedding) packs them, token ids included, into one host array and uploads it in one
/// copy, and every later
/// operation of the step, in every layer, reuses that copy. A step is recognized by the batch object, its
/// <see cref="ForwardBatch.Version"/> (which changes with every Clear) and its row and sequence counts (which change
/// with every Add). Each block table goes up only as far as its sequence's rows reach (a decode step of one sequence
/// at position p sends p / BlockTokens + 1 table entries, not the whole table of its context).
/// </summary>
internal sealed class DeviceBatch(DeviceStaging<int> staging, HostTransferCount transfers) : IDisposable
{
    int[] _packed = [];
    ForwardBatch? _batch;
    long _version;
    int _rows, _sequences;
    DeviceBatchView _view;
    int _maxSlot, _maxBlock;

    /// <summary>The batch's arrays on the device, uploaded now unless this step already did.</summary>
    public DeviceBatchView Of(ForwardBatch batch)
    {
        if (ReferenceEquals(batch, _batch) && batch.Version == _version && batch.Rows == _rows && batch.Sequences == _sequences) return _view;
        if (batch.Rows == 0) throw new ArgumentException("the batch has no rows", nameof(batch));

        int rows = batch.Rows, sequences = batch.Sequences, blockTokens = batch.BlockTokens;
        var firstRow = batch.SequenceFirstRow;
        var rowCount = batch.SequenceRowCount;
        var tableStart = batch.BlockTableStart;
        var tables = batch.BlockTables;
        int tableEntries = 0;
        for (int s = 0; s < sequences; s++) tableEntries += batch.Positions[firstRow[s] + rowCount[s] - 1] / blockTokens + 1;
        int length = 4 * rows + sequences + tableEntries;
        if (_packed.Length < length) _packed = new int[Math.Max(length, _packed.Length * 2)];

        // Layout: positions, slots, row sequences, tokens (rows each), table starts (sequences), tables.
        var packed = _packed.AsSpan(0, length);
        batch.Positions.CopyTo(packed);
        batch.Slots.CopyTo(packed[rows..]);
        batch.RowSequence.CopyTo(packed[(2 * rows)..]);
        batch.Tokens.CopyTo(packed[(3 * rows)..]);
        int maxSlot = 0, maxBlock = 0;
        foreach (int slot in batch.Slots) maxSlot = Math.Max(maxSlot, slot);
        int at = 4 * rows + sequences;
        for (int s = 0; s < sequences; s++)
        {
            // Rows of a sequence are consecutive with increasing positions: the last reaches furthest.
            int needed = batch.Positions[firstRow[s] + rowCount[s] - 1] / blockTokens + 1;
            packed[4 * rows + s] = at - (4 * rows + sequences);
            var table = tables.Slice(tableStart[s], needed);
            table.CopyTo(packed[at..]);
            foreach (int block in table) maxBlock = Math.Max(maxBlock, block);
            at += needed;
        }

        var view = staging.Upload(packed);
        transfers.CountUpload(length * sizeof(int));
        _view = new DeviceBatchView(view.SubView(3 * rows, rows), view.SubView(0, rows), view.SubView(rows, rows), view.SubView(2 * rows, rows),
            view.SubView(4 * rows, sequences), view.SubView(4 * rows + sequences, tableEntries));
        _batch = batch; _version = batch.Version; _rows = rows; _sequences = sequences;
        _maxSlot = maxSlot; _maxBlock = maxBlock;
        return _view;
    }

    /// <summary>Checks the uploaded batch addresses only blocks a pool of `shape` has: the kernels index the pool
    /// unchecked. Call after <see cref="Of"/>.</summary>
    public void CheckFits(KvPoolShape shape)
    {
        if (_batch!.BlockTokens != shape.BlockTokens)
            throw new ArgumentException($"the batch has blocks of {_batch.BlockTokens} tokens, the pool {shape.BlockTokens}", "batch");
        if (_maxBlock >= shape.Blocks || _maxSlot / shape.BlockTokens >= shape.Blocks)
            throw new ArgumentOutOfRangeException("batch", $"the batch addresses block {Math.Max(_maxBlock, _maxSlot / shape.BlockTokens)}, outside the pool's {shape.Blocks} blocks");
    }

    public void Dispose() => staging.Dispose();
}
