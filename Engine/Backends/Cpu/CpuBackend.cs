using System.Numerics.Tensors;
using Engine.Models;

namespace Engine.Backends.Cpu;

/// <summary>The CPU backend: TensorPrimitives for float work, per-type row kernels for matmuls, and a
/// contiguous work split over the cores. Buffers are plain float arrays; scratch is allocated once.
/// As a resident-weights backend it repacks the Q4_K, Q6_K and Q4_0 matrices it is handed into 8-row groups
/// (unless told not to, or without AVX2, where the row kernels are the faster ones); every other matrix is read
/// from the map.</summary>
internal sealed class CpuBackend : IBackend, IResidentWeights
{
    sealed class Buffer(string name, float[] data) : ActivationBuffer(name, data.Length) { public readonly float[] Data = data; }

    sealed class Cache : KvCache
    {
        public float[][] Keys, Values; // per layer: [context x width]; none once disposed
        public Cache(int layers, int ctx, int kw, int vw) : base(layers, ctx, kw, vw)
        {
            Keys = new float[layers][];
            Values = new float[layers][];
            for (int l = 0; l < layers; l++) { Keys[l] = new float[(long)ctx * kw]; Values[l] = new float[(long)ctx * vw]; }
        }

        /// <summary>Drops the arrays, so the collector reclaims them even while the cache object is still referenced.</summary>
        protected override void Release() { Keys = []; Values = []; }

        /// <summary>The cache an operation was handed, checked once for that operation.</summary>
        public static Cache Usable(KvCache cache)
        {
            cache.ThrowIfDisposed();
            return (Cache)cache;
        }
    }

    readonly WorkSplit _split;
    readonly MatMulKernels _matmul;
    readonly bool _repackWeights;
    readonly RepackedWeights _repacked = new();
    float[][] _scores = [];

    public string Name => "cpu";
    public int Threads => _split.Workers;

    /// <summary>Bytes of the repacked copies of weights this backend holds (0 when none were repacked).</summary>
    public long RepackedBytes => _repacked.Bytes;
    /// <summary>Number of matrices held repacked.</summary>
    public int RepackedMatrices => _repacked.Count;

    public CpuBackend(int threads = 0, bool repackWeights = true)
    {
        _split = new WorkSplit(threads > 0 ? threads : Environment.ProcessorCount);
        _matmul = new MatMulKernels(_split) { Repacked = _repacked };
        _repackWeights = repackWeights;
    }

    /// <summary>Repacks the eligible matrices (a type with a repacked layout, whole groups of 8 rows; not a matrix
    /// only used for lookups):
    /// the 8-row kernels compute about twice as fast as the row kernels (docs/quantization.md).</summary>
    /// <summary>Whether <see cref="Upload"/> repacks anything (asked to, and the machine has the kernels).</summary>
    public bool RepacksWeights => _repackWeights && Quantization.Simd.Avx2Fma;

    public void Upload(WeightSet weights)
    {
        if (!_repackWeights || !Quantization.Simd.Avx2Fma) return;
        var lookupOnly = new HashSet<WeightMatrix>(weights.LookupOnly, ReferenceEqualityComparer.Instance);
        _repacked.Add(weights.AllMatrices.Where(m => !lookupOnly.Contains(m)), _split.Workers);
    }

    static float[] D(ActivationBuffer b) => ((Buffer)b).Data;

    public ActivationBuffer Allocate(string name, int length) => new Buffer(name, new float[length]);

    public KvCache CreateKvCache(int layers, int contextLength, int keyWidth, int valueWidth)
    {
        // Attention scores of one head over the whole context, one row per worker, allocated once.
        if (_scores.Length == 0 || _scores[0].Length < contextLength)
            _scores = Enumerable.Range(0, _split.Workers).Select(_ => new float[contextLength]).ToArray();
        return new Cache(layers, contextLength, keyWidth, valueWidth);
    }

    public void Embed(WeightMatrix table, ReadOnlySpan<int> tokens, ActivationBuffer x)
    {
        var dst = D(x);
        for (int t = 0; t < tokens.Length; t++)
            _matmul.DequantizeRow(table, tokens[t], dst.AsSpan(t * table.Cols, table.Cols));
    }

    public void RmsNorm(ActivationBuffer x, WeightVector weight, float epsilon, int rows, ActivationBuffer y)
    {
        int width = weight.Length;
        var src = D(x); var dst = D(y);
        for (int r = 0; r < rows; r++)
        {
            NormKernels.RmsNorm(src.AsSpan(r * width, width), weight.Values, epsilon, dst.AsSpan(r * width, width));
        }
    }

    public void MatMul(WeightMatrix w, ActivationBuffer x, int rows, ActivationBuffer y) =>
        _matmul.MatMul(w, D(x), rows, D(y));

    public void AddBias(ActivationBuffer y, WeightVector bias, int rows)
    {
        var dst = D(y);
        for (int r = 0; r < rows; r++)
        {
            var row = dst.AsSpan(r * bias.Length, bias.Length);
            TensorPrimitives.Add(row, bias.Values, row);
        }
    }

    public void Rope(ActivationBuffer x, int rows, int heads, int start, RopeParameters rope)
    {
        var data = D(x);
        var angles = new RopeAngles(rope);
        Span<float> cos = stackalloc float[rope.RotatedDims / 2];
        Span<float> sin = stackalloc float[rope.RotatedDims / 2];
        for (int t = 0; t < rows; t++)
        {
            angles.Compute(start + t, cos, sin);
            for (int h = 0; h < heads; h++)
                RopeKernels.Rotate(data.AsSpan((t * heads + h) * rope.HeadDim, rope.HeadDim), cos, sin, rope.Style, rope.RotatedDims);
        }
    }

    public void StoreKv(KvCache cache, int layer, int start, int rows, ActivationBuffer k, ActivationBuffer v)
    {
        var c = Cache.Usable(cache);
        D(k).AsSpan(0, rows * c.KeyWidth).CopyTo(c.Keys[layer].AsSpan(start * c.KeyWidth));
        D(v).AsSpan(0, rows * c.ValueWidth).CopyTo(c.Values[layer].AsSpan(start * c.ValueWidth));
    }

    public void Attention(ActivationBuffer q, KvCache cache, int layer, int start, int rows, int heads, int kvHeads, int headDim, int valueDim, ActivationBuffer output)
    {
        var c = Cache.Usable(cache);
        var work = _attentionWork;
        work.Queries = D(q); work.Result = D(output);
        work.Keys = c.Keys[layer]; work.Values = c.Values[layer];
        work.KeyWidth = c.KeyWidth; work.ValueWidth = c.ValueWidth;
        work.Start = start; work.Heads = heads; work.Group = heads / kvHeads;
        work.HeadDim = headDim; work.ValueDim = valueDim;
        work.Scale = 1f / MathF.Sqrt(headDim);
        work.Scores = _scores;
        _split.For(rows * heads, 1, work);
    }

    readonly AttentionWork _attentionWork = new();

    /// <summary>Causal grouped-query attention for one (token, head) pair per item: scores against every cached
    /// key up to the token's own position, a stable softmax, then the weighted sum of the values.</summary>
    sealed class AttentionWork : IRangeWork
    {
        public float[] Queries = [], Result = [], Keys = [], Values = [];
        public float[][] Scores = [];
        public int KeyWidth, ValueWidth, Start, Heads, Group, HeadDim, ValueDim;
        public float Scale;

        public void Execute(int begin, int end, int worker)
        {
            var scoresRow = Scores[worker];
            for (int item = begin; item < end; item++)
            {
                int t = item / Heads, h = item % Heads, kvh = h / Group;
                int length = Start + t + 1; // causal: a token sees itself and everything before it
                var query = Queries.AsSpan((t * Heads + h) * HeadDim, HeadDim);
                var scores = scoresRow.AsSpan(0, length);
                for (int j = 0; j < length; j++)
                    scores[j] = TensorPrimitives.Dot(query, Keys.AsSpan(j * KeyWidth + kvh * HeadDim, HeadDim)) * Scale;
                StableSoftmax(scores);
                var o = Result.AsSpan((t * Heads + h) * ValueDim, ValueDim);
                o.Clear();
                for (int j = 0; j < length; j++)
                    TensorPrimitives.MultiplyAdd(Values.AsSpan(j * ValueWidth + kvh * ValueDim, ValueDim), scores[j], o, o);
            }
        }
    }

    /// <summary>Softmax in place with the maximum subtracted first (TensorPrimitives.SoftMax does not, and
    /// overflows for scores above ~88).</summary>
    public static void StableSoftmax(Span<float> x)
    {
        float max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, x);
        TensorPrimitives.Exp(x, x);
        float sum = TensorPrimitives.Sum(x);
        TensorPrimitives.Divide(x, sum, x);
    }

    public void SwiGlu(ActivationBuffer gate, ActivationBuffer up, int length, ActivationBuffer y)
    {
        var g = D(gate).AsSpan(0, length); var u = D(up).AsSpan(0, length); var dst = D(y).AsSpan(0, length);
        // silu(g) = g * sigmoid(g)
        TensorPrimitives.Sigmoid(g, dst);
        TensorPrimitives.Multiply(dst, g, dst);
        TensorPrimitives.Multiply(dst, u, dst);
    }

    public void Add(ActivationBuffer x, ActivationBuffer y, int length)
    {
        var a = D(x).AsSpan(0, length);
        TensorPrimitives.Add(a, D(y).AsSpan(0, length), a);
    }

    public void Clear(ActivationBuffer x, int length) => D(x).AsSpan(0, length).Clear();

    public ExpertRouting CreateExpertRouting(ExpertRoutingShape shape) => new HostExpertRouting(shape, this);

    public void RouteExperts(ActivationBuffer routerLogits, int rows, ExpertRouting routing, ActivationBuffer probabilities)
    {
        int n = rows * routing.Shape.Experts;
        ((HostExpertRouting)routing).Route(D(routerLogits).AsSpan(0, n), rows, D(probabilities).AsSpan(0, n));
    }

    public void ExpertMatMul(ExpertMatrices w, ExpertRouting routing, ActivationBuffer x, int rows, bool inputPerSlot, ActivationBuffer y) =>
        ((HostExpertRouting)routing).MatMul(this, w, x, rows, inputPerSlot, y);

    public void CombineExperts(ActivationBuffer expertOutputs, ExpertRouting routing, int rows, int width, ActivationBuffer output)
    {
        var r = (HostExpertRouting)routing;
        r.CheckRouted(rows);
        int k = r.Shape.ExpertsPerToken;
        var from = D(expertOutputs); var to = D(output);
        var weights = r.Weights;
        for (int t = 0; t < rows; t++)
        {
            var target = to.AsSpan(t * width, width);
            TensorPrimitives.Multiply(from.AsSpan(t * k * width, width), weights[t * k], target);
            // MultiplyAdd rounds the product before the sum (FusedMultiplyAdd would not), as ggml's mul then add.
            for (int slot = 1; slot < k; slot++)
                TensorPrimitives.MultiplyAdd(from.AsSpan((t * k + slot) * width, width), weights[t * k + slot], target, target);
        }
    }

    public void ReadRouting(ExpertRouting routing, int rows, Span<int> chosen, Span<float> weights) =>
        ((HostExpertRouting)routing).Read(rows, chosen, weights);

    public void AddSigmoidGated(ActivationBuffer gateLogits, ActivationBuffer src, int rows, int width, ActivationBuffer dst)
    {
        var gates = D(gateLogits); var from = D(src); var to = D(dst);
        for (int t = 0; t < rows; t++)
        {
            float gate = 1f / (1f + MathF.Exp(-gates[t]));
            var target = to.AsSpan(t * width, width);
            TensorPrimitives.MultiplyAdd(from.AsSpan(t * width, width), gate, target, target);
        }
    }

    public void Read(ActivationBuffer x, int offset, Span<float> dst) => D(x).AsSpan(offset, dst.Length).CopyTo(dst);

    public void Write(ActivationBuffer x, int offset, ReadOnlySpan<float> values) => values.CopyTo(D(x).AsSpan(offset, values.Length));

    public void Copy(ActivationBuffer src, int srcOffset, ActivationBuffer dst, int dstOffset, int length) =>
        D(src).AsSpan(srcOffset, length).CopyTo(D(dst).AsSpan(dstOffset, length));

    public void Dispose()
    {
        _split.Dispose();
        _repacked.Dispose();
    }
}
