using Engine.Models;

namespace Engine.Research;

/// <summary>
/// Collects what llama-imatrix collects (tools/imatrix/imatrix.cpp, collect_imatrix): for every weight matrix a
/// layer multiplies, the sum over tokens of each input column's squared activation, and how many tokens went in;
/// for the experts of a MoE layer one such row and count per expert, from the tokens routed to it. The inputs are read
/// at the hook points that feed the matrices:
///
///   attn_norm      -> attn_q, attn_k, attn_v          kqv_out        -> attn_output
///   ffn_norm       -> ffn_gate, ffn_up (dense)        ffn_swiglu     -> ffn_down (dense)
///   ffn_norm       -> ffn_gate_inp (the MoE router)
///   ffn_norm x ffn_moe_topk -> ffn_gate_exps, ffn_up_exps of each chosen expert
///   ffn_moe_swiglu x ffn_moe_topk -> ffn_down_exps of each chosen expert (one input per slot)
///
/// Sums are kept in double (llama.cpp adds in float). Weight names are the GGUF tensor names llama.cpp uses.
/// </summary>
internal sealed class ImportanceMatrixCollector
{
    /// <summary>The hook points read.</summary>
    public const string Points = "attn_norm,kqv_out,ffn_norm,ffn_swiglu,ffn_moe_topk,ffn_moe_swiglu";

    internal sealed class Accumulator(int columns, int matrices)
    {
        public int Columns { get; } = columns;
        public int Matrices { get; } = matrices;
        public double[] Sums { get; } = new double[columns * matrices];
        public long[] Counts { get; } = new long[matrices];

        public void Add(int matrix, ReadOnlySpan<float> row)
        {
            var sums = Sums.AsSpan(matrix * Columns, Columns);
            for (int j = 0; j < row.Length; j++) sums[j] += (double)row[j] * row[j];
            Counts[matrix]++;
        }
    }

    readonly ModelConfig _config;
    readonly FeedForwardWeights[] _feedForward;
    readonly Dictionary<string, Accumulator> _entries = new(StringComparer.Ordinal);
    // Per MoE layer, within one step: the feed-forward input of each row (read at ffn_norm) and each slot's expert
    // (read at ffn_moe_topk), used again when the slots' down-projection inputs pass.
    readonly float[][] _moeInput;
    readonly int[][] _moeExperts;

    public ImportanceMatrixCollector(Llama network)
    {
        _config = network.Config;
        _feedForward = [.. network.Weights.Layers.Select(l => l.FeedForward)];
        for (int l = 0; l < _feedForward.Length; l++)
            if (_feedForward[l] is MixtureOfExpertsWeights { SharedExpert: not null })
                throw new NotSupportedException($"layer {l} has a shared expert (qwen2moe): its down-projection input is not a hook point, so its importance cannot be collected");
        _moeInput = new float[_feedForward.Length][];
        _moeExperts = new int[_feedForward.Length][];
    }

    public IReadOnlyDictionary<string, Accumulator> Entries => _entries;

    Accumulator Entry(int layer, string tensor, int columns, int matrices = 1)
    {
        string name = $"blk.{layer}.{tensor}.weight";
        if (!_entries.TryGetValue(name, out var entry)) _entries[name] = entry = new Accumulator(columns, matrices);
        return entry;
    }

    /// <summary>The hook: called with one sequence's rows at one of <see cref="Points"/>.</summary>
    public void Observe(HookContext context, Span<float> values)
    {
        int l = context.Layer, rows = context.Rows, width = context.Width;
        switch (context.Name)
        {
            case "attn_norm":
                AddRows(values, rows, width, Entry(l, "attn_q", width), Entry(l, "attn_k", width), Entry(l, "attn_v", width));
                break;
            case "kqv_out":
                AddRows(values, rows, width, Entry(l, "attn_output", width));
                break;
            case "ffn_norm" when _feedForward[l] is MixtureOfExpertsWeights:
                AddRows(values, rows, width, Entry(l, "ffn_gate_inp", width));
                _moeInput[l] = values.ToArray();
                break;
            case "ffn_norm":
                AddRows(values, rows, width, Entry(l, "ffn_gate", width), Entry(l, "ffn_up", width));
                break;
            case "ffn_swiglu":
                AddRows(values, rows, width, Entry(l, "ffn_down", width));
                break;
            case "ffn_moe_topk" when _feedForward[l] is MixtureOfExpertsWeights moe:
            {
                int k = width, columns = _config.EmbeddingLength;
                var input = _moeInput[l];
                var experts = _moeExperts[l] = new int[rows * k];
                var gate = Entry(l, "ffn_gate_exps", columns, moe.ExpertCount);
                var up = Entry(l, "ffn_up_exps", columns, moe.ExpertCount);
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < k; j++)
                    {
                        int e = experts[r * k + j] = (int)values[r * k + j];
                        var row = input.AsSpan(r * columns, columns);
                        gate.Add(e, row);
                        up.Add(e, row);
                    }
                break;
            }
            case "ffn_moe_swiglu" when _feedForward[l] is MixtureOfExpertsWeights moe:
            {
                var experts = _moeExperts[l];
                int k = experts.Length / rows, hidden = width / k;
                var down = Entry(l, "ffn_down_exps", hidden, moe.ExpertCount);
                for (int slot = 0; slot < rows * k; slot++)
                    down.Add(experts[slot], values.Slice(slot * hidden, hidden));
                break;
            }
        }
    }

    static void AddRows(ReadOnlySpan<float> values, int rows, int width, params ReadOnlySpan<Accumulator> entries)
    {
        for (int r = 0; r < rows; r++)
        {
            var row = values.Slice(r * width, width);
            foreach (var entry in entries) entry.Add(0, row);
        }
    }

    /// <summary>The first weight whose sums are not finite (the model produced NaN or infinite activations), or null.</summary>
    public string? FirstNonFinite() =>
        _entries.Where(e => e.Value.Sums.Any(v => !double.IsFinite(v))).Select(e => e.Key).Order(StringComparer.Ordinal).FirstOrDefault();
}
