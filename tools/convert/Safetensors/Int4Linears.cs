using Engine.Convert.Quant;
using Engine.Convert.Weights;
using Engine.Formats;

namespace Engine.Convert.Safetensors;

/// <summary>The projections of a GPTQ / AWQ folder: each `P.weight` of the float checkpoint becomes P.qweight, P.qzeros,
/// P.scales (and GPTQ's P.g_idx), quantized from the same values the float folder and the GGUF of this preset and seed
/// hold. A linear is quantized when its first part is written and dropped after its last, so one linear is held at a
/// time.</summary>
internal sealed class Int4Linears(TensorDataWriter data, Int4Settings settings, ulong seed)
{
    /// <summary>One tensor of a packed linear, its bytes made on demand.</summary>
    public sealed record Part(string Name, string DType, long[] Shape, long ByteSize, Func<byte[]> Bytes);

    string? _heldPrefix;
    PackedLinear? _held;

    /// <summary>The checkpoint tensors AutoGPTQ / AutoAWQ quantize: every linear inside the decoder layers (attention and
    /// MLP projections, experts included; not the MoE router, which is `mlp.gate`, nor embeddings, norms or lm_head).</summary>
    public static bool IsQuantized(string hfName) =>
        hfName.StartsWith("model.layers.", StringComparison.Ordinal) && hfName.EndsWith("_proj.weight", StringComparison.Ordinal);

    public IEnumerable<Part> Parts(HfTensor t)
    {
        string prefix = t.Name[..^".weight".Length];
        long outputs = t.Shape[0], inputs = t.Shape[1];
        int groupRows = settings.GroupSize == -1 ? (int)inputs : settings.GroupSize;
        if (inputs % groupRows != 0)
            throw new ConvertException($"--group-size {settings.GroupSize} does not divide the input width {inputs} of {t.Name}");
        long groups = inputs / groupRows;
        bool gptq = settings.Method == Int4Method.Gptq;
        long[] qweightShape = gptq ? [inputs / 8, outputs] : [inputs, outputs / 8];
        yield return new Part(prefix + ".qweight", "I32", qweightShape, inputs * outputs / 2, () => Linear(t, prefix).QWeight);
        yield return new Part(prefix + ".qzeros", "I32", [groups, outputs / 8], groups * outputs / 2, () => Linear(t, prefix).QZeros);
        yield return new Part(prefix + ".scales", "F16", [groups, outputs], groups * outputs * 2, () => Linear(t, prefix).Scales);
        if (gptq) yield return new Part(prefix + ".g_idx", "I32", [inputs], inputs * 4, () => Linear(t, prefix).GIdx!);
    }

    PackedLinear Linear(HfTensor t, string prefix)
    {
        if (_heldPrefix == prefix) return _held!;
        int outputs = checked((int)t.Shape[0]), inputs = checked((int)t.Shape[1]);
        var bytes = new MemoryStream(checked(inputs * outputs * 4));
        data.WriteRows(t.Source, GgmlType.F32, bytes, t.FirstRow, t.RowCount);
        var values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes.GetBuffer().AsSpan(0, (int)bytes.Length));
        _held = Int4Checkpoint.Pack(values, inputs, outputs, settings, settings.ActOrder ? ActOrder(prefix, inputs) : null);
        _heldPrefix = prefix;
        return _held;
    }

    /// <summary>A deterministic stand-in for GPTQ's order of decreasing Hessian diagonal: a random permutation of the
    /// inputs, the same for the linears that read the same input (q/k/v; gate/up), as in real act-order checkpoints.</summary>
    int[] ActOrder(string prefix, int inputs)
    {
        int dot = prefix.LastIndexOf('.');
        string projection = prefix[(dot + 1)..];
        string family = prefix[..dot] + "." + projection switch
        {
            "q_proj" or "k_proj" or "v_proj" => "qkv",
            "gate_proj" or "up_proj" => "gate_up",
            _ => projection,
        };
        ulong h = 0xcbf29ce484222325UL ^ seed;
        foreach (char c in family) h = (h ^ c) * 0x100000001b3UL;
        var rng = new Xoshiro256(h);
        var order = Enumerable.Range(0, inputs).ToArray();
        for (int i = inputs - 1; i > 0; i--)
        {
            int j = (int)(rng.Next() % (ulong)(i + 1));
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }
}
