using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Formats.Safetensors;
using Engine.Quantization;

namespace Engine.Tests.Reference;

/// <summary>The hyperparameters the reference forward pass needs, read straight from a GGUF file's metadata (keys as
/// llama.cpp's loader reads them), independently of the engine's own config code.</summary>
internal sealed record ReferenceConfig(
    string Architecture,
    int Dim,             // d_model
    int Layers,
    int Heads,           // query heads
    int KvHeads,         // key/value heads (grouped-query attention: Heads / KvHeads query heads share one)
    int HeadDim,         // width of one head of q and k
    int ValueHeadDim,    // width of one head of v
    int FeedForward,     // SwiGLU hidden width of a dense layer
    int Vocab,
    double RmsEpsilon,
    double RopeBase,     // theta
    int RopeDims,        // leading dimensions of each head that RoPE rotates
    bool NeoxRope,       // rotate (i, i + d/2) instead of (2i, 2i + 1)
    int Experts,         // 0: dense
    int ExpertsUsed,     // the k of top-k
    int ExpertFeedForward,
    int SharedExpertFeedForward,
    bool NormalizeExpertWeights)
{
    public static ReferenceConfig Read(GgufFile file)
    {
        var md = file.Metadata;
        string arch = md.GetString("general.architecture");
        int Int(string key, int? fallback = null) =>
            md.GetIntegerOrNull($"{arch}.{key}") is long v ? (int)v : fallback ?? throw new InvalidDataException($"{file.Path}: no {arch}.{key}");
        int dim = Int("embedding_length"), heads = Int("attention.head_count");
        int headDim = Int("attention.key_length", dim / heads);
        int feedForward = Int("feed_forward_length");
        int experts = Int("expert_count", 0), used = experts > 0 ? Int("expert_used_count") : 0;
        // As llama.cpp: Mixtral (a llama with experts) has experts as wide as the dense feed-forward; the Qwen MoEs state it.
        int expertFeedForward = experts == 0 ? 0 : arch == "llama" ? feedForward : Int("expert_feed_forward_length", feedForward / used);
        return new ReferenceConfig(
            Architecture: arch,
            Dim: dim,
            Layers: Int("block_count"),
            Heads: heads,
            KvHeads: Int("attention.head_count_kv", heads),
            HeadDim: headDim,
            ValueHeadDim: Int("attention.value_length", headDim),
            FeedForward: feedForward,
            Vocab: md.GetArrayOrNull<string>("tokenizer.ggml.tokens")!.Length,
            RmsEpsilon: md.GetFloatOrNull($"{arch}.attention.layer_norm_rms_epsilon")!.Value,
            RopeBase: md.GetFloatOrNull($"{arch}.rope.freq_base") ?? 10000,
            RopeDims: Int("rope.dimension_count", headDim),
            // llama.cpp's llama_model_rope_type: GGUF llama weights are permuted for adjacent pairs, the Qwens are not.
            NeoxRope: arch != "llama",
            Experts: experts,
            ExpertsUsed: used,
            ExpertFeedForward: expertFeedForward,
            SharedExpertFeedForward: arch == "qwen2moe" ? Int("expert_shared_feed_forward_length", feedForward) : 0,
            // llama.cpp's build_moe_ffn norm_w argument per architecture (src/models/*.cpp).
            NormalizeExpertWeights: arch is "llama" or "qwen3moe");
    }
}

/// <summary>How llama.cpp rounds a matmul's input for the weight's storage type before multiplying (the "vec_dot_type"
/// of ggml's CPU backend): F32 weights take the input as it is, F16 weights an F16 copy, Q8_0 and Q4_0 weights a copy in
/// 8-bit blocks. The reference rounds the same way so that it computes what llama.cpp computes, not a better answer.</summary>
internal enum InputRounding { None, F16, Q8_0 }

/// <summary>A weight matrix in float64, y = W x form: Rows outputs, each the dot product of a row with an input of Cols values.</summary>
internal sealed class Matrix(int rows, int cols, double[] values, InputRounding rounding = InputRounding.None)
{
    public int Rows { get; } = rows;
    public int Cols { get; } = cols;
    public double[] Values { get; } = values;

    public double[] Times(double[] input)
    {
        var x = Round(input);
        var y = new double[Rows];
        for (int r = 0; r < Rows; r++)
        {
            double sum = 0;
            for (int c = 0; c < Cols; c++) sum += Values[(long)r * Cols + c] * x[c];
            y[r] = sum;
        }
        return y;
    }

    /// <summary>Row r as a vector (an embedding lookup: no arithmetic, so no rounding).</summary>
    public double[] Row(int r) => Values.AsSpan(r * Cols, Cols).ToArray();

    double[] Round(double[] x)
    {
        switch (rounding)
        {
            case InputRounding.F16:
                return x.Select(v => (double)(Half)v).ToArray();
            case InputRounding.Q8_0:
                // Blocks of 32: scale d = max|x| / 127 (stored as F16), each value becomes round(x / d) · d,
                // halves to even as llama.cpp's x86 quantizer rounds them.
                var rounded = new double[x.Length];
                for (int start = 0; start < x.Length; start += 32)
                {
                    double max = 0;
                    for (int i = start; i < start + 32; i++) max = Math.Max(max, Math.Abs(x[i]));
                    double scale = (double)(Half)(max / 127), inverse = max == 0 ? 0 : 127 / max;
                    for (int i = start; i < start + 32; i++) rounded[i] = Math.Round(x[i] * inverse, MidpointRounding.ToEven) * scale;
                }
                return rounded;
            default:
                return x;
        }
    }
}

internal sealed record ReferenceSwiGlu(Matrix Gate, Matrix Up, Matrix Down);

internal sealed record ReferenceExperts(Matrix Router, ReferenceSwiGlu[] Experts, ReferenceSwiGlu? Shared, Matrix? SharedGate);

internal sealed record ReferenceLayer(
    double[] AttentionNorm,
    Matrix Q, Matrix K, Matrix V,
    double[]? QBias, double[]? KBias, double[]? VBias,   // qwen2
    double[]? QNorm, double[]? KNorm,                    // qwen3: one RMSNorm scale per head dimension
    Matrix Output,
    double[] FeedForwardNorm,
    ReferenceSwiGlu? Dense,
    ReferenceExperts? Moe);

/// <summary>Every weight of a GGUF model dequantized to float64 (through the engine's scalar reference decoders for
/// quantized types), by llama.cpp's tensor names.</summary>
internal sealed record ReferenceWeights(ReferenceConfig Config, Matrix Embedding, ReferenceLayer[] Layers, double[] OutputNorm, Matrix Output)
{
    public static ReferenceWeights Load(string path)
    {
        using var file = GgufFile.Open(path);
        var c = ReferenceConfig.Read(file);
        Matrix M(string name) => ReadMatrix(file.GetTensor(name));
        Matrix? OptionalM(string name) => file.TryGetTensor(name, out var t) ? ReadMatrix(t) : null;
        double[] V(string name) => Decode(file.GetTensor(name));
        double[]? OptionalV(string name) => file.TryGetTensor(name, out var t) ? Decode(t) : null;
        ReferenceSwiGlu SwiGlu(string prefix, string suffix) =>
            new(M($"{prefix}ffn_gate{suffix}.weight"), M($"{prefix}ffn_up{suffix}.weight"), M($"{prefix}ffn_down{suffix}.weight"));

        var layers = new ReferenceLayer[c.Layers];
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"blk.{l}.";
            ReferenceExperts? moe = null;
            if (c.Experts > 0)
            {
                var gate = ExpertStack(file.GetTensor(p + "ffn_gate_exps.weight"));
                var up = ExpertStack(file.GetTensor(p + "ffn_up_exps.weight"));
                var down = ExpertStack(file.GetTensor(p + "ffn_down_exps.weight"));
                moe = new ReferenceExperts(M(p + "ffn_gate_inp.weight"),
                    Enumerable.Range(0, c.Experts).Select(e => new ReferenceSwiGlu(gate[e], up[e], down[e])).ToArray(),
                    c.SharedExpertFeedForward > 0 ? SwiGlu(p, "_shexp") : null,
                    c.SharedExpertFeedForward > 0 ? M(p + "ffn_gate_inp_shexp.weight") : null);
            }
            layers[l] = new ReferenceLayer(
                V(p + "attn_norm.weight"),
                M(p + "attn_q.weight"), M(p + "attn_k.weight"), M(p + "attn_v.weight"),
                OptionalV(p + "attn_q.bias"), OptionalV(p + "attn_k.bias"), OptionalV(p + "attn_v.bias"),
                OptionalV(p + "attn_q_norm.weight"), OptionalV(p + "attn_k_norm.weight"),
                M(p + "attn_output.weight"),
                V(p + "ffn_norm.weight"),
                c.Experts > 0 ? null : SwiGlu(p, ""),
                moe);
        }
        var embedding = M("token_embd.weight");
        // No output.weight: the output projection is the embedding itself (tied).
        return new ReferenceWeights(c, embedding, layers, V("output_norm.weight"), OptionalM("output.weight") ?? embedding);
    }

    /// <summary>A Hugging Face folder (config.json + model.safetensors) of a Llama, Qwen2, Qwen3 or Qwen3-MoE model: the
    /// same computation under Hugging Face's names, with its rotate-half (NeoX) RoPE for every architecture, since
    /// Hugging Face keeps q and k rows in that order (llama.cpp's converter permutes llama's into adjacent pairs).</summary>
    public static ReferenceWeights LoadHuggingFace(string folder)
    {
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "config.json")));
        var h = json.RootElement;
        int Int(string key, int fallback = -1) => h.TryGetProperty(key, out var v) ? v.GetInt32() : fallback >= 0 ? fallback : throw new InvalidDataException($"{folder}: config.json has no {key}");
        string type = h.GetProperty("model_type").GetString()!;
        int dim = Int("hidden_size"), heads = Int("num_attention_heads"), headDim = Int("head_dim", dim / heads), experts = Int("num_experts", 0);
        var c = new ReferenceConfig(
            Architecture: type, Dim: dim, Layers: Int("num_hidden_layers"), Heads: heads, KvHeads: Int("num_key_value_heads", heads),
            HeadDim: headDim, ValueHeadDim: headDim, FeedForward: Int("intermediate_size"), Vocab: Int("vocab_size"),
            RmsEpsilon: h.GetProperty("rms_norm_eps").GetDouble(),
            RopeBase: h.TryGetProperty("rope_theta", out var theta) ? theta.GetDouble() : 10000,
            RopeDims: headDim, NeoxRope: true,
            Experts: experts, ExpertsUsed: Int("num_experts_per_tok", 0), ExpertFeedForward: Int("moe_intermediate_size", 0),
            SharedExpertFeedForward: 0, NormalizeExpertWeights: h.TryGetProperty("norm_topk_prob", out var norm) && norm.GetBoolean());

        using var file = SafetensorsModel.Open(folder);
        Matrix M(string name) => ReadMatrix(file.GetView(name));
        double[] V(string name) => Decode(file.GetView(name));
        double[]? OptionalV(string name) => file.Contains(name) ? V(name) : null;
        ReferenceSwiGlu SwiGlu(string prefix) => new(M(prefix + "gate_proj.weight"), M(prefix + "up_proj.weight"), M(prefix + "down_proj.weight"));

        var layers = new ReferenceLayer[c.Layers];
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            var moe = experts == 0 ? null : new ReferenceExperts(M(p + "mlp.gate.weight"),
                Enumerable.Range(0, experts).Select(e => SwiGlu($"{p}mlp.experts.{e}.")).ToArray(), null, null);
            layers[l] = new ReferenceLayer(
                V(p + "input_layernorm.weight"),
                M(p + "self_attn.q_proj.weight"), M(p + "self_attn.k_proj.weight"), M(p + "self_attn.v_proj.weight"),
                OptionalV(p + "self_attn.q_proj.bias"), OptionalV(p + "self_attn.k_proj.bias"), OptionalV(p + "self_attn.v_proj.bias"),
                OptionalV(p + "self_attn.q_norm.weight"), OptionalV(p + "self_attn.k_norm.weight"),
                M(p + "self_attn.o_proj.weight"),
                V(p + "post_attention_layernorm.weight"),
                experts == 0 ? SwiGlu(p + "mlp.") : null,
                moe);
        }
        var embedding = M("model.embed_tokens.weight");
        return new ReferenceWeights(c, embedding, layers, V("model.norm.weight"), file.Contains("lm_head.weight") ? M("lm_head.weight") : embedding);
    }

    /// <summary>A GGUF matrix [ne0 = inputs, ne1 = outputs]: ne1 rows of ne0 values (a 1-D tensor is one row: qwen2moe's
    /// shared-expert gate).</summary>
    static Matrix ReadMatrix(TensorView t) => new(t.Shape.Count > 1 ? (int)t.Shape[1] : 1, (int)t.Shape[0], Decode(t), RoundingFor(t));

    /// <summary>A stacked expert tensor [ne0 = inputs, ne1 = outputs, ne2 = experts]: one matrix per expert.</summary>
    static Matrix[] ExpertStack(TensorView t)
    {
        int cols = (int)t.Shape[0], rows = (int)t.Shape[1], experts = (int)t.Shape[2];
        var all = Decode(t);
        return Enumerable.Range(0, experts)
            .Select(e => new Matrix(rows, cols, all.AsSpan(e * rows * cols, rows * cols).ToArray(), RoundingFor(t)))
            .ToArray();
    }

    static InputRounding RoundingFor(TensorView t) => t.Type switch
    {
        GgmlType.F32 => InputRounding.None,
        GgmlType.F16 => InputRounding.F16,
        GgmlType.Q8_0 or GgmlType.Q4_0 => InputRounding.Q8_0,
        _ => throw new NotSupportedException($"the reference multiplies F32, F16, Q8_0 and Q4_0 weights, not {t.Type} ('{t.Name}')"),
    };

    /// <summary>Every element of a tensor as float64, row by row.</summary>
    static double[] Decode(TensorView t)
    {
        var format = RowFormats.For(t.Type);
        int rowLength = (int)t.RowLength;
        long rows = t.ElementCount / rowLength, rowBytes = t.ByteSize / rows;
        var result = new double[t.ElementCount];
        var row = new float[rowLength];
        for (long r = 0; r < rows; r++)
        {
            format.DequantizeRowReference(t.Bytes.Slice((int)(r * rowBytes), (int)rowBytes), row);
            for (int i = 0; i < rowLength; i++) result[r * rowLength + i] = row[i];
        }
        return result;
    }
}
