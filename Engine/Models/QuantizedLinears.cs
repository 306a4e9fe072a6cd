using System.Runtime.InteropServices;
using Engine.Formats;
using Engine.Formats.HuggingFace;
using Engine.Formats.Safetensors;

namespace Engine.Models;

/// <summary>What a GPTQ / AWQ linear needs beyond its rows, which are held as Q4_0 blocks (same 4-bit codes, d = the
/// group's f16 scale): Q4_0 computes d·(q − 8), the checkpoint means s·(q − z), so a layer whose zeros are not all 8
/// adds Σ_groups s·(8 − z)·Σ_group(x) per row. Both terms are exact in float (an f16 scale times a small integer),
/// so the zero point costs one float per group of weights (g128: 1/32 byte per weight) and no new block kernel.</summary>
internal sealed class QuantizedLinear
{
    /// <summary>Act-order: the matrix's columns are the input sorted by group, so the matmul reads x[InputOrder[j]]
    /// at column j. Null when the input is used in its own order.</summary>
    public int[]? InputOrder { get; init; }
    /// <summary>[rows x groups]: s·(8 − z) of each group, or null when every zero is 8.</summary>
    public float[]? ZeroCorrection { get; init; }
    /// <summary>Columns per group (a multiple of 32): the zero-point term of a group multiplies the sum of these inputs.</summary>
    public int GroupColumns { get; init; } = 32;
    /// <summary>Compute with the activations in float32 (exact) instead of quantized to Q8_0 blocks (fast).</summary>
    public bool FloatActivations { get; init; }
    /// <summary>The checkpoint's format and settings, e.g. "GPTQ 4-bit g128 sym".</summary>
    public required string Description { get; init; }
}

/// <summary>
/// The quantized linears of a GPTQ (v1) or AWQ (gemm) Hugging Face folder, seen as the GGUF weight names the loader
/// asks for. Every quantized layer's tensors are checked when this is built (dtypes, shapes against each other and
/// against the model's config, group sizes, g_idx), before a byte is repacked; a matrix is repacked when the loader
/// asks for it.
///
/// The file layouts are not row-major by output (GPTQ packs eight inputs per int32 down the columns, AWQ eight
/// outputs per int32 with an interleave), so each matrix is copied once into Q4_0 rows: the same 4-bit codes and
/// f16 scales, 18 bytes per 32 weights, never floats. A symmetric GPTQ layer with groups of a multiple of 32 is then
/// exactly a Q4_0 matrix and runs every Q4_0 kernel (the CPU's 8-row repack, the GPU's decoder).
///
/// Act-order (GPTQ desc_act, a non-monotonic g_idx): the columns are stored sorted by group (a stable sort of
/// g_idx), so each 32-column block lies in one group. The input must then be read in that order; for ffn_down the
/// output rows of gate and up are stored in down's column order instead, so the SwiGLU output already arrives
/// sorted and down reads it as it is.
/// </summary>
internal sealed class QuantizedLinearSource : IDisposable
{
    const int Block = 32;
    /// <summary>AWQ's nibble of output column j of an 8-column pack (AutoAWQ's AWQ_REVERSE_ORDER).</summary>
    static readonly int[] AwqNibble = [0, 4, 1, 5, 2, 6, 3, 7];

    sealed record Layer(string Prefix, int In, int Out, int GroupRows, TensorView QWeight, TensorView QZeros, TensorView Scales, int[]? Order);

    readonly HfQuantizationConfig _config;
    readonly bool _floatActivations, _tiedOutput;
    readonly Dictionary<string, Layer> _layers = new(StringComparer.Ordinal);
    readonly List<MappedRegion> _regions = [];
    readonly Lock _regionsLock = new();

    public HfQuantizationConfig Config => _config;
    /// <summary>Whether the checkpoint's matmuls take float32 activations (exact) rather than Q8_0 blocks.</summary>
    public bool FloatActivations => _floatActivations;

    /// <summary>Checks every quantized layer of `model`; `expectedShape` gives the (input, output) width a layer
    /// prefix must have, or null for a prefix the model does not use.</summary>
    public QuantizedLinearSource(SafetensorsModel model, HfQuantizationConfig config, Func<string, (int In, int Out)?> expectedShape,
        bool tiedOutput, bool floatActivations)
    {
        _config = config;
        _tiedOutput = tiedOutput;
        _floatActivations = floatActivations;
        foreach (var info in model.Tensors)
        {
            if (!info.Name.EndsWith(".qweight", StringComparison.Ordinal)) continue;
            string prefix = info.Name[..^".qweight".Length];
            _layers[prefix] = Check(model, prefix, expectedShape(prefix));
        }
        if (_layers.Count == 0)
            throw new ModelFormatException(FormatErrorKind.MissingKey,
                $"{config.Source} declares a {config.Method} checkpoint, but no tensor ends in .qweight", field: "quantization_config");
    }

    public int LayerCount => _layers.Count;

    /// <summary>Whether a Hugging Face prefix (e.g. model.layers.0.self_attn.q_proj) is a quantized layer here.</summary>
    public bool IsLayer(string prefix) => _layers.ContainsKey(prefix);

    /// <summary>The (input, output) widths of a quantized layer.</summary>
    public (int In, int Out) Shape(string prefix) => (_layers[prefix].In, _layers[prefix].Out);

    /// <summary>Whether every layer is exactly a Q4_0 matrix: all zeros 8 (GPTQ symmetric, or an AWQ layer that happens
    /// to have them) and the inputs in their own order (no act-order, or a g_idx that is simply i / group size).
    /// The group size is a multiple of 32 for every layer the constructor accepted.</summary>
    public bool AllExactQ4_0 => _layers.Values.All(l => l.Order is null && AllZerosEight(l));

    bool AllZerosEight(Layer layer)
    {
        // GPTQ v1 stores zero − 1, so 8 is nibble 7; AWQ stores the zero itself (any nibble order: all eight are equal).
        uint eights = _config.Method == HfQuantMethod.Gptq ? 0x77777777u : 0x88888888u;
        foreach (uint word in MemoryMarshal.Cast<byte, uint>(layer.QZeros.Bytes))
            if (word != eights) return false;
        return true;
    }

    /// <summary>A layer whose zeros are all 8 and whose inputs are in order, as Q4_0 rows: the file's own 4-bit codes and
    /// f16 scales (row r is output rowOrder[r], or r).</summary>
    public byte[] ExactQ4_0Rows(string prefix, int[]? rowOrder)
    {
        var layer = _layers[prefix];
        if (layer.Order is not null || !AllZerosEight(layer))
            throw new InvalidOperationException($"{prefix} is not exactly a Q4_0 matrix (act-order or zeros other than 8)");
        var rows = Repack(layer, _config.Method, rowOrder, out var correction);
        if (correction is not null) throw new InvalidOperationException($"{prefix}: zero-point terms on a layer whose zeros are all 8");
        return rows;
    }

    /// <summary>The layer's weights in float32, [out, in] row-major, by the formula every reader agrees on:
    /// GPTQ v1 scales[g_idx[i], o]·(q − (stored zero + 1)), AWQ scales[i / G, o]·(q − z). Each value is an f16 scale
    /// times an integer in −15..15, so it is exact in float32.</summary>
    public unsafe float[] Dequantize(string prefix)
    {
        var layer = _layers[prefix];
        int inputs = layer.In, outputs = layer.Out, groups = inputs / layer.GroupRows;
        bool gptq = _config.Method == HfQuantMethod.Gptq;
        var group = new int[inputs];
        if (gptq && layer.Order is { } order)
            for (int position = 0; position < inputs; position++) group[order[position]] = position / layer.GroupRows;
        else
            for (int i = 0; i < inputs; i++) group[i] = i / layer.GroupRows;
        var qzeros = MemoryMarshal.Cast<byte, uint>(layer.QZeros.Bytes);
        var scales = MemoryMarshal.Cast<byte, Half>(layer.Scales.Bytes);
        // Zero and scale per (group, output) as floats, then every weight from its code, in the file's storage order.
        var zeroScale = new float[(long)groups * outputs];
        var scale = new float[(long)groups * outputs];
        for (int g = 0; g < groups; g++)
            for (int o = 0; o < outputs; o++)
            {
                uint word = qzeros[g * (outputs / 8) + o / 8];
                int z = gptq ? (int)((word >> (4 * (o % 8))) & 0xF) + 1 : (int)((word >> (4 * AwqNibble[o % 8])) & 0xF);
                float s = (float)scales[g * outputs + o];
                scale[(long)g * outputs + o] = s;
                zeroScale[(long)g * outputs + o] = s * z;
            }
        var w = new float[(long)outputs * inputs];
        var qweight = (uint*)layer.QWeight.Pointer;
        Parallel.For(0, inputs, i =>
        {
            long at = (long)group[i] * outputs;
            for (int o = 0; o < outputs; o++)
            {
                int q = Code(qweight, gptq, outputs, i, o);
                w[(long)o * inputs + i] = scale[at + o] * q - zeroScale[at + o];
            }
        });
        return w;
    }

    /// <summary>The description every repacked matrix carries (for inspect and messages).</summary>
    public string Description => Describe(_config);

    static string Describe(HfQuantizationConfig c) => c.Method == HfQuantMethod.Gptq
        ? $"GPTQ v1 {c.Bits}-bit, {(c.GroupSize == -1 ? "one group per row" : $"group size {c.GroupSize}")}, {(c.Sym ? "symmetric" : "asymmetric")}{(c.DescAct ? ", act-order (desc_act)" : "")}"
        : $"AWQ gemm {c.Bits}-bit, group size {c.GroupSize}, zero point";

    /// <summary>What `engine inspect` shows of a folder's quantization: the settings in words, with where they were read
    /// and what the engine makes of them; null for a folder that declares none. An unsupported setting is reported,
    /// not thrown.</summary>
    public static string? DescribeFolder(string folder)
    {
        HfQuantizationConfig? config;
        try { config = HfQuantizationConfig.Load(folder); }
        catch (ModelFormatException e) { return "not runnable by this engine: " + e.Detail + (e.Field is null ? "" : $" [{e.Field}]"); }
        if (config is null) return null;
        string runs = config.Method == HfQuantMethod.Gptq && config.Sym && !config.DescAct
            ? "loaded as Q4_0 rows (exact), CPU and GPU"
            : "loaded as Q4_0 rows plus exact zero-point terms" + (config.DescAct ? " and a sorted input order" : "") + ", CPU and GPU";
        return $"{Describe(config)} (from {config.Source}); {runs}; activations q8 by default (with a float output head rounded at load to Q6_K, as the Q4_0 GGUF stores it), f32 (exact) with --gptq-activations f32";
    }

    Layer Check(SafetensorsModel model, string prefix, (int In, int Out)? expected)
    {
        bool gptq = _config.Method == HfQuantMethod.Gptq;
        var qweight = Required(model, prefix + ".qweight", GgmlType.I32, "I32");
        if (qweight.Shape.Count != 2)
            throw new ModelFormatException(FormatErrorKind.InvalidShape, $"tensor '{qweight.Name}' must be 2-D", field: qweight.Name,
                expected: gptq ? "[in/8, out]" : "[in, out/8]", actual: qweight.ShapeText);
        // Shapes in ggml order (reversed from the file's): GPTQ qweight [in/8, out] is [out, in/8] here.
        long inputs = gptq ? qweight.Shape[1] * 8 : qweight.Shape[1];
        long outputs = gptq ? qweight.Shape[0] : qweight.Shape[0] * 8;
        if (expected is { } e && (inputs != e.In || outputs != e.Out))
            throw new ModelFormatException(FormatErrorKind.InvalidShape, $"tensor '{qweight.Name}' has the wrong shape for a [{e.In} -> {e.Out}] linear",
                field: qweight.Name, expected: gptq ? $"[{e.In / 8}, {e.Out}]" : $"[{e.In}, {e.Out / 8}]", actual: FileShape(qweight));
        if (inputs > int.MaxValue || outputs > int.MaxValue)
            throw new ModelFormatException(FormatErrorKind.InvalidShape, $"tensor '{qweight.Name}' is too large", field: qweight.Name, actual: FileShape(qweight));
        int @in = (int)inputs, @out = (int)outputs;
        int groupRows = _config.GroupRows(@in);
        if (@in % groupRows != 0)
            throw new ModelFormatException(FormatErrorKind.InvalidShape,
                $"group_size {groupRows} does not divide the input width {@in} of '{qweight.Name}'", field: qweight.Name,
                expected: $"a divisor of {@in}", actual: groupRows.ToString());
        if (groupRows % Block != 0)
            throw new ModelFormatException(FormatErrorKind.NotBlockAligned,
                $"group_size {groupRows} of '{qweight.Name}' is not a multiple of 32, which the engine's 4-bit blocks need", field: qweight.Name,
                expected: "a multiple of 32", actual: groupRows.ToString());
        int groups = @in / groupRows;

        var scales = Required(model, prefix + ".scales", GgmlType.F16, "F16");
        CheckShape(scales, [@out, groups], $"[{groups}, {@out}]");
        var qzeros = Required(model, prefix + ".qzeros", GgmlType.I32, "I32");
        CheckShape(qzeros, [@out / 8, groups], $"[{groups}, {@out / 8}]");

        int[]? order = null;
        if (gptq && model.TryGetView(prefix + ".g_idx", out var gIdx))
        {
            if (gIdx.Type != GgmlType.I32)
                throw new ModelFormatException(FormatErrorKind.UnknownTensorType, $"tensor '{gIdx.Name}' must be I32", field: gIdx.Name, expected: "I32", actual: gIdx.Type.ToString());
            CheckShape(gIdx, [@in], $"[{@in}]");
            order = ActOrder(gIdx, @in, groups, groupRows);
        }
        return new Layer(prefix, @in, @out, groupRows, qweight, qzeros, scales, order);
    }

    /// <summary>The stable sort of g_idx when it is not simply i / groupRows (null then), after checking that every
    /// value is a group and every group has groupRows rows.</summary>
    static int[]? ActOrder(TensorView gIdx, int inputs, int groups, int groupRows)
    {
        var g = MemoryMarshal.Cast<byte, int>(gIdx.Bytes);
        var counts = new int[groups];
        bool monotonic = true;
        for (int i = 0; i < inputs; i++)
        {
            if ((uint)g[i] >= (uint)groups)
                throw new ModelFormatException(FormatErrorKind.InvalidShape, $"tensor '{gIdx.Name}' holds group {g[i]} at input {i}, outside the {groups} groups",
                    field: gIdx.Name, expected: $"0..{groups - 1}", actual: g[i].ToString());
            counts[g[i]]++;
            monotonic &= g[i] == i / groupRows;
        }
        for (int k = 0; k < groups; k++)
            if (counts[k] != groupRows)
                throw new ModelFormatException(FormatErrorKind.InvalidShape, $"tensor '{gIdx.Name}' gives group {k} {counts[k]} input rows, not group_size {groupRows}",
                    field: gIdx.Name, expected: groupRows.ToString(), actual: counts[k].ToString());
        if (monotonic) return null;
        var start = new int[groups];
        for (int k = 1; k < groups; k++) start[k] = start[k - 1] + counts[k - 1];
        var order = new int[inputs];
        for (int i = 0; i < inputs; i++) order[start[g[i]]++] = i;
        return order;
    }

    static TensorView Required(SafetensorsModel model, string name, GgmlType type, string typeName)
    {
        if (!model.TryGetView(name, out var view))
            throw new ModelFormatException(FormatErrorKind.MissingKey, $"required tensor '{name}' of a quantized linear is missing", field: name);
        if (view.Type != type)
            throw new ModelFormatException(FormatErrorKind.UnknownTensorType, $"tensor '{name}' must be {typeName}", field: name, expected: typeName, actual: view.Type.ToString());
        return view;
    }

    static void CheckShape(TensorView view, long[] ggmlShape, string fileShape)
    {
        if (!view.Shape.SequenceEqual(ggmlShape))
            throw new ModelFormatException(FormatErrorKind.InvalidShape, $"tensor '{view.Name}' has the wrong shape", field: view.Name,
                expected: fileShape, actual: FileShape(view));
    }

    static string FileShape(TensorView view) => "[" + string.Join(", ", view.Shape.Reverse()) + "]";

    /// <summary>The quantized linear behind a GGUF matrix name, repacked, or null when that matrix is not quantized.</summary>
    public WeightMatrix? TryMatrix(string ggufName, int cols, int rows)
    {
        if (!TryLayer(ggufName, out var layer)) return null;
        if (layer.In != cols || layer.Out != rows)
            throw new ModelFormatException(FormatErrorKind.InvalidShape, $"tensor '{layer.QWeight.Name}' has the wrong shape", field: layer.QWeight.Name,
                expected: $"a [{cols} -> {rows}] linear", actual: $"[{layer.In} -> {layer.Out}]");
        int[]? inputOrder = layer.Order, rowOrder = null;
        if (SiblingDown(layer.Prefix) is { } down && _layers.TryGetValue(down, out var downLayer) && downLayer.Order is not null)
            rowOrder = downLayer.Order;
        else if (layer.Order is not null && IsDown(layer.Prefix) && BothUpstreamQuantized(layer.Prefix))
            inputOrder = null; // gate and up emit their rows in this layer's column order
        var correction = ZeroTerms(layer.QZeros, layer.Scales, _config.Method, layer.In, layer.Out, layer.GroupRows, rowOrder);
        // The Q4_0 rows are made when first read: the CPU backend's 8-row repack reads them once and drops them, so a
        // folder holds one copy of its weights, as a GGUF does.
        long bytes = (long)rows * (cols / Block) * BlockBytes;
        var method = _config.Method;
        long rowBytes = (long)(cols / Block) * BlockBytes;
        var region = MappedRegion.Deferred(layer.Prefix + " (Q4_0 repack)", bytes, dst =>
        {
            unsafe { RepackRows(layer.QWeight, layer.Scales, method, layer.In, layer.Out, layer.GroupRows, layer.Order, rowOrder, 0, layer.Out, (byte*)dst); }
        }, (offset, destination) =>
        {
            // Whole rows only (the CPU's repack reads whole groups of 8 rows); anything else makes the whole matrix.
            if (offset % rowBytes != 0 || destination.Length % rowBytes != 0) return false;
            unsafe
            {
                fixed (byte* d = destination)
                    RepackRows(layer.QWeight, layer.Scales, method, layer.In, layer.Out, layer.GroupRows, layer.Order, rowOrder,
                        (int)(offset / rowBytes), (int)(destination.Length / rowBytes), d);
            }
            return true;
        });
        lock (_regionsLock) _regions.Add(region);
        var view = new TensorView(layer.Prefix + " (Q4_0 repack)", GgmlType.Q4_0, [cols, rows], (long)cols * rows, bytes, 0, region);
        return new WeightMatrix(ggufName, view)
        {
            Quantized = new QuantizedLinear
            {
                InputOrder = inputOrder, ZeroCorrection = correction, GroupColumns = layer.GroupRows, FloatActivations = _floatActivations, Description = Description,
            },
        };
    }

    /// <summary>The output head the fast mode multiplies with. GPTQ and AWQ leave lm_head (or the tied embedding) in
    /// F16 / BF16, which is a fifth of a 1.5B model's bytes read per token: the same model's Q4_0 GGUF stores it in
    /// Q6_K, so the folder would read 30% more bytes per token than that file. With 8-bit activations the head is
    /// rounded as llama-quantize rounds that GGUF's (llama_tensor_get_type): to Q6_K (ggml's reference quantizer, so the
    /// same bytes as the GGUF's head made from the same weights) when its rows are whole 256-blocks, else to Q8_0.
    /// Its error adds about 4e-4 to the fixtures' logit NMSE (Q8_0: 5e-5), below the 8-bit activations' own.
    /// The rows are made from the file, never the map, so the stored head's pages do not stay resident beside them,
    /// and any range of rows can be made alone: the CPU backend's repack reads the head in chunks and never holds the
    /// whole Q6_K copy beside its repacked one, and a tied embedding (looked up in these rows, one copy, as the GGUF
    /// looks up its Q6_K one: see LlamaWeights.Load) then makes each looked-up row when it is read. In the float mode,
    /// and for a head that is itself quantized, the head is returned unchanged.</summary>
    public WeightMatrix OutputHead(WeightMatrix head)
    {
        if (_floatActivations || !RoundOutputHead || head.Quantized is not null || head.Type is not (GgmlType.F16 or GgmlType.BF16 or GgmlType.F32)
            || head.Cols % Block != 0)
            return head;
        var source = head.View;
        var sourceFormat = Engine.Quantization.RowFormats.For(source.Type);
        int cols = head.Cols, rows = head.Rows;
        var type = cols % Engine.Quantization.QuantMath.QK_K == 0 ? GgmlType.Q6_K : GgmlType.Q8_0;
        long sourceRowBytes = source.ByteSize / rows, rowBytes = Engine.Quantization.RowEncoder.RowBytes(type, cols);
        string name = $"{source.Name} (rounded to {type})";

        // Rows [first, first + count) into dst: one tile on this thread (an embedding lookup makes one row, per token),
        // more in 256-row tiles over the cores.
        const int Tile = 256;
        unsafe void MakeTile(int first, int count, byte* dst)
        {
            var raw = System.Buffers.ArrayPool<byte>.Shared.Rent((int)(sourceRowBytes * count));
            var row = System.Buffers.ArrayPool<float>.Shared.Rent(cols);
            try
            {
                source.ReadBytes(first * sourceRowBytes, raw.AsSpan(0, (int)(sourceRowBytes * count)));
                for (int r = 0; r < count; r++)
                {
                    sourceFormat.DequantizeRow(raw.AsSpan((int)(r * sourceRowBytes), (int)sourceRowBytes), row.AsSpan(0, cols));
                    Engine.Quantization.RowEncoder.Encode(type, row.AsSpan(0, cols), new Span<byte>(dst + r * rowBytes, (int)rowBytes));
                }
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(raw);
                System.Buffers.ArrayPool<float>.Shared.Return(row);
            }
        }
        unsafe void MakeRows(int first, int count, byte* dst)
        {
            if (count <= Tile) { MakeTile(first, count, dst); return; }
            Parallel.For(0, (count + Tile - 1) / Tile, tile =>
            {
                int from = tile * Tile;
                MakeTile(first + from, Math.Min(Tile, count - from), dst + from * rowBytes);
            });
        }

        MappedRegion region;
        unsafe
        {
            region = MappedRegion.Deferred(name, rowBytes * rows, dst => MakeRows(0, rows, (byte*)dst), (offset, destination) =>
            {
                if (offset % rowBytes != 0 || destination.Length % rowBytes != 0) return false;
                fixed (byte* d = destination) MakeRows((int)(offset / rowBytes), (int)(destination.Length / rowBytes), d);
                return true;
            });
        }
        lock (_regionsLock) _regions.Add(region);
        RoundedOutputHead = source.Type.ToString();
        OutputHeadType = type;
        var view = new TensorView(name, type, [cols, rows], (long)cols * rows, rowBytes * rows, 0, region);
        return new WeightMatrix("output.weight", view);
    }

    /// <summary>Whether <see cref="OutputHead"/> rounds a float head in the 8-bit mode (off: the stored head is kept).</summary>
    public bool RoundOutputHead { get; init; } = true;

    /// <summary>The stored type of the head <see cref="OutputHead"/> rounded (F16, BF16, F32), or null when it rounded
    /// none (a rounded head passed to it again is a quantized matrix, returned as it is).</summary>
    public string? RoundedOutputHead { get; private set; }

    /// <summary>The type <see cref="OutputHead"/> rounded the head to (Q6_K, or Q8_0 for rows that are not whole 256-blocks).</summary>
    public GgmlType? OutputHeadType { get; private set; }

    bool TryLayer(string ggufName, out Layer layer)
    {
        foreach (var name in HfTensorSource.HfNames(ggufName, _tiedOutput))
            if (name.EndsWith(".weight", StringComparison.Ordinal) && _layers.TryGetValue(name[..^".weight".Length], out layer!)) return true;
        layer = null!;
        return false;
    }

    // The down projection that reads a gate / up projection's output, and back: dense and shared-expert MLPs and
    // Qwen's experts (gate_proj, up_proj, down_proj), Mixtral's experts (w1 gate, w3 up, w2 down).
    static string? SiblingDown(string prefix) =>
        prefix.EndsWith(".gate_proj", StringComparison.Ordinal) || prefix.EndsWith(".up_proj", StringComparison.Ordinal) ? prefix[..prefix.LastIndexOf('.')] + ".down_proj"
        : prefix.EndsWith(".w1", StringComparison.Ordinal) || prefix.EndsWith(".w3", StringComparison.Ordinal) ? prefix[..^3] + ".w2"
        : null;

    static bool IsDown(string prefix) => prefix.EndsWith(".down_proj", StringComparison.Ordinal) || prefix.EndsWith(".w2", StringComparison.Ordinal);

    bool BothUpstreamQuantized(string downPrefix)
    {
        string stem = downPrefix[..downPrefix.LastIndexOf('.')];
        return downPrefix.EndsWith(".w2", StringComparison.Ordinal)
            ? _layers.ContainsKey(stem + ".w1") && _layers.ContainsKey(stem + ".w3")
            : _layers.ContainsKey(stem + ".gate_proj") && _layers.ContainsKey(stem + ".up_proj");
    }

    /// <summary>The layer's rows as Q4_0 (row r is the file's output rowOrder[r], its columns in the layer's input
    /// order), and the zero-point terms (null when every zero is 8).</summary>
    internal static unsafe byte[] Repack(TensorView qweightView, TensorView qzerosView, TensorView scalesView, HfQuantMethod method,
        int inputs, int outputs, int groupRows, int[]? inputOrder, int[]? rowOrder, out float[]? correction)
    {
        var dst = new byte[(long)outputs * (inputs / Block) * BlockBytes];
        fixed (byte* p = dst) RepackRows(qweightView, scalesView, method, inputs, outputs, groupRows, inputOrder, rowOrder, 0, outputs, p);
        correction = ZeroTerms(qzerosView, scalesView, method, inputs, outputs, groupRows, rowOrder);
        return dst;
    }

    const int BlockBytes = 18;

    /// <summary>s·(8 − z) per (row, group) in the matrix's row order, [rows x groups]; null when every zero is 8. One
    /// term per group, not per 32-block: every block of a group shares its scale and zero (act-order sorts the columns by
    /// group), so the matmul multiplies it by the sum of the group's inputs.</summary>
    internal static float[]? ZeroTerms(TensorView qzerosView, TensorView scalesView, HfQuantMethod method, int inputs, int outputs, int groupRows, int[]? rowOrder)
    {
        var qzeros = MemoryMarshal.Cast<byte, uint>(qzerosView.Bytes);
        var scales = MemoryMarshal.Cast<byte, Half>(scalesView.Bytes);
        bool gptq = method == HfQuantMethod.Gptq;
        int groups = inputs / groupRows;
        float[]? terms = null;
        for (int row = 0; row < outputs; row++)
        {
            int o = rowOrder is null ? row : rowOrder[row];
            for (int g = 0; g < groups; g++)
            {
                // GPTQ v1 stores zero − 1, AWQ the zero itself in its interleaved nibble.
                uint word = qzeros[g * (outputs / 8) + o / 8];
                int z = gptq ? (int)((word >> (4 * (o % 8))) & 0xF) + 1 : (int)((word >> (4 * AwqNibble[o % 8])) & 0xF);
                if (z == 8 && terms is null) continue;
                terms ??= new float[(long)outputs * groups];
                terms[(long)row * groups + g] = (float)scales[g * outputs + o] * (8 - z);
            }
        }
        return terms;
    }

    /// <summary>Writes the layer's Q4_0 rows [firstRow, firstRow + rowCount) at dst: the same 4-bit codes, d = the
    /// group's f16 scale. The packed words those rows need are read through the file into a scratch buffer (freed at
    /// the end), not through the map: the map's pages would otherwise stay resident in this process beside the rows made
    /// from them. Rows in the file's order need only their own columns of qweight (GPTQ: `rowCount` words of each packed
    /// input row; AWQ: the words holding those eight-output groups), so a matrix made chunk by chunk reads qweight once;
    /// rows in another order (gate and up of an act-order checkpoint) read all of it.</summary>
    internal static unsafe void RepackRows(TensorView qweightView, TensorView scalesView, HfQuantMethod method,
        int inputs, int outputs, int groupRows, int[]? inputOrder, int[]? rowOrder, int firstRow, int rowCount, byte* dst)
    {
        if (firstRow < 0 || rowCount < 0 || firstRow > outputs - rowCount)
            throw new ArgumentOutOfRangeException(nameof(firstRow), $"rows [{firstRow}, +{rowCount}) of {outputs}");
        if (rowCount == 0) return;
        int blocks = inputs / Block;
        bool gptq = method == HfQuantMethod.Gptq;
        var window = QWeightWindow.For(gptq, inputs, outputs, rowOrder is null ? firstRow : 0, rowOrder is null ? rowCount : outputs);
        var qweight = (uint*)NativeMemory.Alloc((nuint)window.Bytes);
        try
        {
            window.Read(qweightView, qweight);
            var scales = (ushort*)scalesView.Pointer;
            // Rows go to the workers in tiles of 16: GPTQ keeps 16 neighbouring outputs of an input in one 64-byte line,
            // so a tile reads each line of qweight once instead of once per row.
            const int Tile = 16;
            int end = firstRow + rowCount;
            Parallel.For(0, (rowCount + Tile - 1) / Tile, tile =>
            {
                for (int row = firstRow + tile * Tile; row < Math.Min(end, firstRow + tile * Tile + Tile); row++)
                {
                    int o = rowOrder is null ? row : rowOrder[row];
                    for (int b = 0; b < blocks; b++)
                    {
                        int g = b * Block / groupRows;
                        byte* at = dst + ((long)(row - firstRow) * blocks + b) * BlockBytes;
                        ushort scaleBits = scales[(long)g * outputs + o];
                        at[0] = (byte)scaleBits;
                        at[1] = (byte)(scaleBits >> 8);
                        for (int j = 0; j < Block / 2; j++)
                        {
                            int lo = window.Code(qweight, inputOrder is null ? b * Block + j : inputOrder[b * Block + j], o);
                            int hi = window.Code(qweight, inputOrder is null ? b * Block + j + 16 : inputOrder[b * Block + j + 16], o);
                            at[2 + j] = (byte)(lo | hi << 4);
                        }
                    }
                }
            });
        }
        finally { NativeMemory.Free(qweight); }
    }

    /// <summary>The part of qweight that outputs [first, first + count) are packed in, as words: per packed row of
    /// eight inputs (GPTQ, stored [in/8, out]) the words of those outputs, per input (AWQ, stored [in, out/8]) the words
    /// of their eight-output groups. Stride words per line, the first word of a line being column Column0.</summary>
    readonly record struct QWeightWindow(bool Gptq, int Lines, int Stride, int FileStride, int Column0)
    {
        public long Bytes => (long)Lines * Stride * sizeof(uint);

        public static QWeightWindow For(bool gptq, int inputs, int outputs, int first, int count) => gptq
            ? new QWeightWindow(true, inputs / 8, count, outputs, first)
            : new QWeightWindow(false, inputs, (first + count + 7) / 8 - first / 8, outputs / 8, first / 8);

        public unsafe void Read(TensorView qweight, uint* dst)
        {
            if (Stride == FileStride)
            {
                qweight.ReadBytes(0, new Span<byte>(dst, checked((int)Bytes)));
                return;
            }
            for (int line = 0; line < Lines; line++)
                qweight.ReadBytes(((long)line * FileStride + Column0) * sizeof(uint), new Span<byte>(dst + (long)line * Stride, Stride * sizeof(uint)));
        }

        /// <summary>The 4-bit code of input i, output o (an output inside the window).</summary>
        public unsafe int Code(uint* words, int i, int o) => Gptq
            ? (int)((words[(long)(i / 8) * Stride + o - Column0] >> (4 * (i % 8))) & 0xF)
            : (int)((words[(long)i * Stride + o / 8 - Column0] >> (4 * AwqNibble[o % 8])) & 0xF);
    }

    byte[] Repack(Layer layer, HfQuantMethod method, int[]? rowOrder, out float[]? correction) =>
        Repack(layer.QWeight, layer.QZeros, layer.Scales, method, layer.In, layer.Out, layer.GroupRows, layer.Order, rowOrder, out correction);

    /// <summary>The 4-bit code of input i, output o: GPTQ packs eight inputs per word down a column, AWQ eight
    /// outputs per word along a row, interleaved.</summary>
    static unsafe int Code(uint* qweight, bool gptq, int outputs, int i, int o) => gptq
        ? (int)((qweight[(long)(i / 8) * outputs + o] >> (4 * (i % 8))) & 0xF)
        : (int)((qweight[(long)i * (outputs / 8) + o / 8] >> (4 * AwqNibble[o % 8])) & 0xF);

    public void Dispose()
    {
        lock (_regionsLock)
        {
            foreach (var region in _regions) region.Dispose();
            _regions.Clear();
        }
    }
}

/// <summary>The (input, output) widths the model's config gives a quantized layer, by its Hugging Face prefix.</summary>
internal static partial class QuantizedLinearShapes
{
    [System.Text.RegularExpressions.GeneratedRegex(@"^model\.layers\.(\d+)\.(.+)$")]
    private static partial System.Text.RegularExpressions.Regex LayerPrefix();

    public static (int In, int Out)? Expected(ModelConfig c, string prefix)
    {
        if (prefix == "lm_head") return (c.EmbeddingLength, c.VocabSize);
        var m = LayerPrefix().Match(prefix);
        if (!m.Success) return null;
        string rest = m.Groups[2].Value;
        int e = c.EmbeddingLength;
        int hidden = rest.StartsWith("mlp.experts.", StringComparison.Ordinal) || rest.StartsWith("block_sparse_moe.experts.", StringComparison.Ordinal)
            ? c.ExpertFeedForwardLength
            : rest.StartsWith("mlp.shared_expert.", StringComparison.Ordinal) ? c.SharedExpertFeedForwardLength : c.FeedForwardLength;
        string projection = rest[(rest.LastIndexOf('.') + 1)..];
        return projection switch
        {
            "q_proj" => (e, c.QueryWidth),
            "k_proj" => (e, c.KeyWidth),
            "v_proj" => (e, c.ValueWidth),
            "o_proj" => (c.HeadCount * c.ValueHeadDim, e),
            "gate_proj" or "up_proj" or "w1" or "w3" => (e, hidden),
            "down_proj" or "w2" => (hidden, e),
            _ => null,
        };
    }
}
