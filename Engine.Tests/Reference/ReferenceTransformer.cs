namespace Engine.Tests.Reference;

/// <summary>
/// A plain float64 forward pass of the Llama family (Llama 2/3, Mixtral, Qwen2, Qwen3 and their MoE variants), written to
/// be read next to the papers, not to be fast: one token at a time, every sum a loop. It is the engine's independent
/// check: every intermediate it records carries llama.cpp's name, so it can be set against the engine's hooks point by
/// point, and its logits against llama.cpp's.
///
///   x = embed(tokens)
///   for each layer:
///       h = x + Wo · attention(RoPE(Wq · norm(x)), RoPE(Wk · norm(x)), Wv · norm(x))     causal, grouped-query
///       x = h + FFN(norm(h))                  FFN = Wdown · (silu(Wgate · h) ⊙ (Wup · h)), or a mixture of such experts
///   logits = Wout · norm(x)
///
/// Conventions: T tokens at positions 0..T-1 (one prompt, no cache: every key is computed here), D = d_model,
/// H query heads and Hkv key/value heads of width d.
/// </summary>
internal sealed class ReferenceTransformer(ReferenceWeights weights)
{
    readonly ReferenceConfig c = weights.Config;

    /// <summary>Runs the prompt and returns every intermediate, keyed as the engine's activation caches are
    /// ("attn_norm.0", "kq_soft_max.1", "result_output"): row-wise points are [T, width] row-major, kq_soft_max is
    /// [H, T, T] (query position, key position; 0 where a query may not look).</summary>
    public Dictionary<string, double[]> Run(IReadOnlyList<int> tokens)
    {
        int T = tokens.Count;
        var trace = new Dictionary<string, double[]>();
        void Record(string name, int layer, double[][] rows) => trace[layer < 0 ? name : $"{name}.{layer}"] = rows.SelectMany(r => r).ToArray();

        var x = tokens.Select(t => weights.Embedding.Row(t)).ToArray();
        Record("inp_embd", -1, x);

        for (int l = 0; l < c.Layers; l++)
        {
            var w = weights.Layers[l];
            Record("l_in", l, x);

            // Attention: every position's q, k, v first (a later position attends to the earlier ones' keys).
            var normed = x.Select(row => RmsNorm(row, w.AttentionNorm)).ToArray();
            var q = new double[T][];
            var k = new double[T][];
            var v = new double[T][];
            for (int t = 0; t < T; t++)
            {
                q[t] = AddBias(w.Q.Times(normed[t]), w.QBias);
                k[t] = AddBias(w.K.Times(normed[t]), w.KBias);
                v[t] = AddBias(w.V.Times(normed[t]), w.VBias);
                if (w.QNorm is not null) NormalizeHeads(q[t], c.Heads, w.QNorm);
                if (w.KNorm is not null) NormalizeHeads(k[t], c.KvHeads, w.KNorm);
                Rope(q[t], c.Heads, position: t);
                Rope(k[t], c.KvHeads, position: t);
            }
            Record("attn_norm", l, normed);
            Record("Qcur", l, q);
            Record("Kcur", l, k);
            Record("Vcur", l, v);

            var (attention, pattern) = Attention(q, k, v);
            Record("kqv_out", l, attention);
            trace[$"kq_soft_max.{l}"] = pattern;
            var attentionOut = attention.Select(w.Output.Times).ToArray();
            Record("attn_out", l, attentionOut);
            var h = x.Select((row, t) => Add(row, attentionOut[t])).ToArray();   // residual
            Record("ffn_inp", l, h);

            // Feed-forward on each position alone.
            var ffnNormed = h.Select(row => RmsNorm(row, w.FeedForwardNorm)).ToArray();
            Record("ffn_norm", l, ffnNormed);
            double[][] ffnOut;
            if (w.Dense is { } dense)
            {
                var gate = ffnNormed.Select(dense.Gate.Times).ToArray();
                var up = ffnNormed.Select(dense.Up.Times).ToArray();
                var hidden = gate.Select((g, t) => SwiGlu(g, up[t])).ToArray();
                Record("ffn_gate", l, gate);
                Record("ffn_up", l, up);
                Record("ffn_swiglu", l, hidden);
                ffnOut = hidden.Select(dense.Down.Times).ToArray();
            }
            else
            {
                var moe = ffnNormed.Select(row => MixtureOfExperts(w.Moe!, row)).ToArray();
                Record("ffn_moe_logits", l, moe.Select(m => m.RouterLogits).ToArray());
                Record("ffn_moe_probs", l, moe.Select(m => m.Probabilities).ToArray());
                Record("ffn_moe_topk", l, moe.Select(m => m.Chosen.Select(e => (double)e).ToArray()).ToArray());
                Record("ffn_moe_weights", l, moe.Select(m => m.Chosen.Select(e => m.Probabilities[e]).ToArray()).ToArray());
                if (c.NormalizeExpertWeights) Record("ffn_moe_weights_norm", l, moe.Select(m => m.Weights).ToArray());
                Record("ffn_moe_out", l, moe.Select(m => m.RoutedOutput).ToArray());
                ffnOut = moe.Select(m => m.Output).ToArray();
            }
            Record("ffn_out", l, ffnOut);
            x = h.Select((row, t) => Add(row, ffnOut[t])).ToArray();        // residual
            Record("l_out", l, x);
        }

        var final = x.Select(row => RmsNorm(row, weights.OutputNorm)).ToArray();
        Record("result_norm", -1, final);
        Record("result_output", -1, final.Select(weights.Output.Times).ToArray());
        return trace;
    }

    /// <summary>RMSNorm: x / sqrt(mean(x²) + ε), times a learned scale per dimension.</summary>
    double[] RmsNorm(ReadOnlySpan<double> x, double[] scale)
    {
        double sumOfSquares = 0;
        foreach (double value in x) sumOfSquares += value * value;
        double inverseRms = 1 / Math.Sqrt(sumOfSquares / x.Length + c.RmsEpsilon);
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++) y[i] = x[i] * inverseRms * scale[i];
        return y;
    }

    /// <summary>Qwen3: each head of q (or k) gets its own RMSNorm, with one scale shared by all heads.</summary>
    void NormalizeHeads(double[] x, int heads, double[] scale)
    {
        int d = x.Length / heads;
        for (int head = 0; head < heads; head++)
            RmsNorm(x.AsSpan(head * d, d), scale).CopyTo(x, head * d);
    }

    /// <summary>
    /// Rotary position embedding: within each head, pair i of the rotated dimensions turns by the angle
    /// position · base^(-2i / n_rot). Which two dimensions form pair i is the "style": adjacent (2i, 2i + 1), as GGUF llama
    /// weights are laid out, or NeoX's halves (i, i + n_rot/2), as Qwen (and every Hugging Face checkpoint) is. Dimensions
    /// beyond n_rot pass through. Because q·k then depends on the two positions only through their difference, attention
    /// sees relative positions.
    /// </summary>
    void Rope(double[] x, int heads, int position)
    {
        int d = x.Length / heads, pairs = c.RopeDims / 2;
        for (int head = 0; head < heads; head++)
            for (int i = 0; i < pairs; i++)
            {
                double angle = position * Math.Pow(c.RopeBase, -2.0 * i / c.RopeDims);
                int a = head * d + (c.NeoxRope ? i : 2 * i);
                int b = head * d + (c.NeoxRope ? i + pairs : 2 * i + 1);
                double x0 = x[a], x1 = x[b];
                x[a] = x0 * Math.Cos(angle) - x1 * Math.Sin(angle);
                x[b] = x0 * Math.Sin(angle) + x1 * Math.Cos(angle);
            }
    }

    /// <summary>
    /// Causal scaled dot-product attention with grouped-query heads: query head h reads key/value head h / (H / Hkv).
    /// For the query at position t: scores_j = q·k_j / sqrt(d) for j ≤ t, p = softmax(scores), output = Σ_j p_j v_j.
    /// Returns the heads' outputs side by side ([T, H·d_v]) and the patterns p ([H, T, T]).
    /// </summary>
    (double[][] Output, double[] Pattern) Attention(double[][] q, double[][] k, double[][] v)
    {
        int T = q.Length, d = c.HeadDim, dv = c.ValueHeadDim, group = c.Heads / c.KvHeads;
        var output = new double[T][];
        var pattern = new double[c.Heads * T * T];
        for (int t = 0; t < T; t++)
        {
            output[t] = new double[c.Heads * dv];
            for (int head = 0; head < c.Heads; head++)
            {
                int kvHead = head / group;
                var scores = new double[t + 1];
                for (int j = 0; j <= t; j++)
                {
                    double dot = 0;
                    for (int i = 0; i < d; i++) dot += q[t][head * d + i] * k[j][kvHead * d + i];
                    scores[j] = dot / Math.Sqrt(d);
                }
                var p = Softmax(scores);
                for (int j = 0; j <= t; j++)
                {
                    pattern[(head * T + t) * T + j] = p[j];
                    for (int i = 0; i < dv; i++) output[t][head * dv + i] += p[j] * v[j][kvHead * dv + i];
                }
            }
        }
        return (output, pattern);
    }

    sealed record MoeStep(double[] RouterLogits, double[] Probabilities, int[] Chosen, double[] Weights, double[] RoutedOutput, double[] Output);

    /// <summary>
    /// A mixture of SwiGLU experts for one token (Mixtral, Qwen-MoE): the router scores every expert, softmax makes the
    /// scores probabilities, the k most probable experts run (ties: the lower index first), and their outputs are summed
    /// weighted by their probabilities (rescaled to sum to 1 where the architecture says so). qwen2moe adds a shared
    /// expert that every token passes through, scaled by sigmoid(w · x).
    /// </summary>
    MoeStep MixtureOfExperts(ReferenceExperts moe, double[] x)
    {
        var logits = moe.Router.Times(x);
        var probabilities = Softmax(logits);
        var chosen = Enumerable.Range(0, c.Experts).OrderByDescending(e => probabilities[e]).ThenBy(e => e).Take(c.ExpertsUsed).ToArray();
        var expertWeights = chosen.Select(e => probabilities[e]).ToArray();
        if (c.NormalizeExpertWeights)
        {
            double sum = expertWeights.Sum();
            for (int i = 0; i < expertWeights.Length; i++) expertWeights[i] /= sum;
        }
        var routed = new double[x.Length];
        for (int slot = 0; slot < chosen.Length; slot++)
        {
            var expert = moe.Experts[chosen[slot]];
            var y = expert.Down.Times(SwiGlu(expert.Gate.Times(x), expert.Up.Times(x)));
            for (int i = 0; i < y.Length; i++) routed[i] += expertWeights[slot] * y[i];
        }
        var output = (double[])routed.Clone();
        if (moe.Shared is { } shared)
        {
            double gate = Sigmoid(moe.SharedGate!.Times(x)[0]);
            var y = shared.Down.Times(SwiGlu(shared.Gate.Times(x), shared.Up.Times(x)));
            for (int i = 0; i < y.Length; i++) output[i] += gate * y[i];
        }
        return new MoeStep(logits, probabilities, chosen, expertWeights, routed, output);
    }

    /// <summary>SwiGLU's hidden layer: silu(gate) ⊙ up, silu(z) = z · sigmoid(z).</summary>
    static double[] SwiGlu(double[] gate, double[] up) => gate.Select((g, i) => g * Sigmoid(g) * up[i]).ToArray();

    static double Sigmoid(double z) => 1 / (1 + Math.Exp(-z));

    /// <summary>exp(z_i - max) / Σ exp(z_j - max): subtracting the maximum changes nothing but keeps exp from overflowing.</summary>
    static double[] Softmax(double[] z)
    {
        double max = z.Max();
        var e = z.Select(value => Math.Exp(value - max)).ToArray();
        double sum = e.Sum();
        return e.Select(value => value / sum).ToArray();
    }

    static double[] AddBias(double[] x, double[]? bias) => bias is null ? x : Add(x, bias);

    static double[] Add(double[] a, double[] b) => a.Select((value, i) => value + b[i]).ToArray();
}
