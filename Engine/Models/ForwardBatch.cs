namespace Engine.Models;

/// <summary>Which logits a sequence in a batch wants: none (a prompt chunk that does not end the prompt), its last
/// row's (the next token), or every row's (perplexity, golden checks).</summary>
internal enum LogitsWanted { None, Last, Every }

/// <summary>
/// The rows of one forward step, each carrying its own (sequence, position): several sequences' prompt chunks and
/// next tokens go through the model together, so each weight matrix is read once per step for all of them. Rows of
/// one sequence are consecutive. Each sequence brings its block table: the blocks of the paged KV pool that hold its
/// positions, block i holding positions [i*BlockTokens, (i+1)*BlockTokens). Built on the host once per step and
/// reused (no allocation once its arrays have grown to the step's size); <see cref="Version"/> changes with every
/// build, so a GPU backend uploads it once per step, not once per layer.
/// </summary>
internal sealed class ForwardBatch
{
    int[] _tokens = [], _positions = [], _slots = [], _rowSequence = [];
    int[] _firstRow = [], _rowCount = [], _tableStart = [], _tableLength = [], _tables = [];
    int[] _logitRows = [];
    long[] _sequenceIds = [];
    ForwardPhase[] _phases = [];

    public ForwardBatch(int blockTokens)
    {
        if (blockTokens <= 0) throw new ArgumentOutOfRangeException(nameof(blockTokens));
        BlockTokens = blockTokens;
    }

    /// <summary>Token positions per KV block.</summary>
    public int BlockTokens { get; }
    public int Rows { get; private set; }
    public int Sequences { get; private set; }
    /// <summary>Rows whose logits are computed, in row order; the logits come out in this order.</summary>
    public int LogitRowCount { get; private set; }
    /// <summary>Changes with every <see cref="Clear"/>: a backend that copies the batch to its device keys the copy on it.</summary>
    public long Version { get; private set; }
    /// <summary>The highest position of any row plus one: the longest attention span in the batch.</summary>
    public int MaxSpan { get; private set; }

    public ReadOnlySpan<int> Tokens => _tokens.AsSpan(0, Rows);
    /// <summary>Each row's position in its sequence.</summary>
    public ReadOnlySpan<int> Positions => _positions.AsSpan(0, Rows);
    /// <summary>Each row's KV slot in the pool: block * BlockTokens + position % BlockTokens.</summary>
    public ReadOnlySpan<int> Slots => _slots.AsSpan(0, Rows);
    /// <summary>Each row's sequence (an index below <see cref="Sequences"/>).</summary>
    public ReadOnlySpan<int> RowSequence => _rowSequence.AsSpan(0, Rows);
    public ReadOnlySpan<int> SequenceFirstRow => _firstRow.AsSpan(0, Sequences);
    public ReadOnlySpan<int> SequenceRowCount => _rowCount.AsSpan(0, Sequences);
    /// <summary>Where each sequence's block table starts in <see cref="BlockTables"/>.</summary>
    public ReadOnlySpan<int> BlockTableStart => _tableStart.AsSpan(0, Sequences);
    public ReadOnlySpan<int> BlockTableLength => _tableLength.AsSpan(0, Sequences);
    /// <summary>Every sequence's block table, one after the other.</summary>
    public ReadOnlySpan<int> BlockTables => _tables.AsSpan(0, Sequences == 0 ? 0 : _tableStart[Sequences - 1] + _tableLength[Sequences - 1]);
    public ReadOnlySpan<int> LogitRows => _logitRows.AsSpan(0, LogitRowCount);
    /// <summary>Each sequence's id (a session's, or a one-off pass's): what hooks are told and filter on.</summary>
    public ReadOnlySpan<long> SequenceIds => _sequenceIds.AsSpan(0, Sequences);
    /// <summary>Whether each sequence's rows read a prompt or are one decode step.</summary>
    public ReadOnlySpan<ForwardPhase> Phases => _phases.AsSpan(0, Sequences);

    /// <summary>The block table of row `row`'s sequence.</summary>
    public ReadOnlySpan<int> BlockTableOfRow(int row)
    {
        int s = _rowSequence[row];
        return _tables.AsSpan(_tableStart[s], _tableLength[s]);
    }

    /// <summary>Starts a new step with no rows.</summary>
    public void Clear()
    {
        Rows = 0; Sequences = 0; LogitRowCount = 0; MaxSpan = 0;
        Version++;
    }

    /// <summary>Adds one sequence's rows: `tokens` at positions [firstPosition, firstPosition + tokens.Length), whose
    /// KV goes to (and whose attention reads from) the blocks of `blockTable`, which must cover every position up to
    /// the last row's. `sequenceId` and `phase` are for hooks (which sequence, prompt or decode).</summary>
    public void Add(ReadOnlySpan<int> tokens, int firstPosition, ReadOnlySpan<int> blockTable, LogitsWanted logits,
        long sequenceId = 0, ForwardPhase phase = ForwardPhase.Prompt)
    {
        if (tokens.IsEmpty) throw new ArgumentException("a sequence adds at least one row", nameof(tokens));
        if (firstPosition < 0) throw new ArgumentOutOfRangeException(nameof(firstPosition));
        int end = firstPosition + tokens.Length;
        if ((long)blockTable.Length * BlockTokens < end)
            throw new ArgumentException($"a block table of {blockTable.Length} blocks of {BlockTokens} cannot hold position {end - 1}", nameof(blockTable));
        int rows = Rows, s = Sequences, tableStart = s == 0 ? 0 : _tableStart[s - 1] + _tableLength[s - 1];
        Grow(ref _tokens, rows + tokens.Length); Grow(ref _positions, rows + tokens.Length);
        Grow(ref _slots, rows + tokens.Length); Grow(ref _rowSequence, rows + tokens.Length);
        Grow(ref _logitRows, rows + tokens.Length);
        Grow(ref _sequenceIds, s + 1); Grow(ref _phases, s + 1);
        Grow(ref _firstRow, s + 1); Grow(ref _rowCount, s + 1); Grow(ref _tableStart, s + 1); Grow(ref _tableLength, s + 1);
        Grow(ref _tables, tableStart + blockTable.Length);

        tokens.CopyTo(_tokens.AsSpan(rows));
        blockTable.CopyTo(_tables.AsSpan(tableStart));
        for (int i = 0; i < tokens.Length; i++)
        {
            int position = firstPosition + i;
            _positions[rows + i] = position;
            _slots[rows + i] = blockTable[position / BlockTokens] * BlockTokens + position % BlockTokens;
            _rowSequence[rows + i] = s;
        }
        if (logits == LogitsWanted.Every)
            for (int i = 0; i < tokens.Length; i++) _logitRows[LogitRowCount++] = rows + i;
        else if (logits == LogitsWanted.Last)
            _logitRows[LogitRowCount++] = rows + tokens.Length - 1;
        _sequenceIds[s] = sequenceId; _phases[s] = phase;
        _firstRow[s] = rows; _rowCount[s] = tokens.Length; _tableStart[s] = tableStart; _tableLength[s] = blockTable.Length;
        Rows = rows + tokens.Length;
        Sequences = s + 1;
        MaxSpan = Math.Max(MaxSpan, end);
    }

    static void Grow<T>(ref T[] array, int length)
    {
        if (array.Length < length) Array.Resize(ref array, Math.Max(length, array.Length * 2));
    }
}
