namespace Engine.Models;

/// <summary>
/// The names of the forward pass's hook points and the patterns that pick them. A pattern is a comma-separated list of
/// items, each one of:
/// <list type="bullet">
/// <item>a llama.cpp tensor name with optional <c>*</c> wildcards, for every layer (<c>l_out</c>, <c>ffn_moe_*</c>, <c>*</c>);</item>
/// <item>such a name and a layer, or <c>*</c> for every layer (<c>l_out.3</c>, <c>kq_soft_max.*</c>);</item>
/// <item>a TransformerLens name (<c>blocks.3.hook_resid_post</c>, <c>blocks.*.attn.hook_pattern</c>, <c>hook_embed</c>),
/// so that tutorials written for TransformerLens map one to one.</item>
/// </list>
/// Patterns are expanded once, when a hook is added, into the exact (name, layer) pairs they pick: finding a point's
/// hooks during a pass is one lookup, and a pattern that picks nothing is an error then, not a silent no-op.
/// </summary>
internal static class HookPoints
{
    /// <summary>Points outside the blocks (layer -1).</summary>
    public static readonly string[] Global = ["inp_embd", "result_norm", "result_output"];

    /// <summary>Points of every block, in the order a block passes them. Attention scores ("kq", "kq_soft_max") are
    /// formed only for layers that have a hook on them; the MoE points exist only in MoE layers.</summary>
    public static readonly string[] PerLayer =
    [
        "l_in", "attn_norm", "Qcur", "Kcur", "Vcur", "kq", "kq_soft_max", "kqv_out", "attn_out", "ffn_inp", "ffn_norm",
        "ffn_gate", "ffn_up", "ffn_swiglu",
        "ffn_moe_logits", "ffn_moe_probs", "ffn_moe_topk", "ffn_moe_weights", "ffn_moe_weights_norm", "ffn_moe_swiglu", "ffn_moe_down", "ffn_moe_out",
        "ffn_shexp_gate", "ffn_shexp",
        "ffn_out", "l_out",
    ];

    /// <summary>Points whose values are derived for the hook and not read back by the pass: changing them changes nothing
    /// (the expert choice is changed through the router logits, ffn_moe_logits).</summary>
    public static readonly HashSet<string> ReadOnly = ["ffn_moe_probs", "ffn_moe_topk", "ffn_moe_weights", "ffn_moe_weights_norm", "ffn_shexp_gate"];

    /// <summary>TransformerLens's hook names (HookedTransformer) and the llama.cpp point each is.</summary>
    public static readonly IReadOnlyDictionary<string, string> TransformerLensBlock = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["hook_resid_pre"] = "l_in",
        ["ln1.hook_normalized"] = "attn_norm",
        ["attn.hook_rot_q"] = "Qcur",
        ["attn.hook_rot_k"] = "Kcur",
        ["attn.hook_v"] = "Vcur",
        ["attn.hook_attn_scores"] = "kq",
        ["attn.hook_pattern"] = "kq_soft_max",
        ["attn.hook_z"] = "kqv_out",
        ["hook_attn_out"] = "attn_out",
        ["hook_resid_mid"] = "ffn_inp",
        ["ln2.hook_normalized"] = "ffn_norm",
        ["mlp.hook_pre"] = "ffn_gate",
        ["mlp.hook_pre_linear"] = "ffn_up",
        ["mlp.hook_post"] = "ffn_swiglu",
        ["hook_mlp_out"] = "ffn_out",
        ["hook_resid_post"] = "l_out",
    };

    public static readonly IReadOnlyDictionary<string, string> TransformerLensGlobal = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["hook_embed"] = "inp_embd",
        ["ln_final.hook_normalized"] = "result_norm",
    };

    /// <summary>Every (name, layer) a pattern picks in a model of `layerCount` blocks.</summary>
    /// <exception cref="ArgumentException">An item names no point, a layer outside the model, or picks nothing.</exception>
    public static HashSet<(string Name, int Layer)> Expand(string pattern, int layerCount)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        var picked = new HashSet<(string, int)>();
        foreach (var raw in pattern.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            int before = picked.Count;
            if (raw.StartsWith("blocks.", StringComparison.Ordinal)) ExpandTransformerLens(raw, layerCount, picked);
            else if (TransformerLensGlobal.TryGetValue(raw, out var global)) picked.Add((global, -1));
            else ExpandLlama(raw, layerCount, picked);
            if (picked.Count == before)
                throw new ArgumentException($"hook point '{raw}' picks nothing: {Known}", nameof(pattern));
        }
        if (picked.Count == 0) throw new ArgumentException($"no hook point given: {Known}", nameof(pattern));
        return picked;
    }

    static string Known =>
        $"points are {string.Join(", ", Global.Concat(PerLayer))} (optionally .LAYER or .*), or TransformerLens names " +
        $"blocks.L.{{{string.Join(",", TransformerLensBlock.Keys)}}}, {string.Join(", ", TransformerLensGlobal.Keys)}";

    static void ExpandLlama(string item, int layerCount, HashSet<(string, int)> picked)
    {
        string name = item;
        int? layer = null;
        bool everyLayer = true;
        int dot = item.LastIndexOf('.');
        if (dot > 0)
        {
            var suffix = item[(dot + 1)..];
            name = item[..dot];
            if (suffix == "*") everyLayer = true;
            else if (int.TryParse(suffix, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int l))
            {
                if (l >= layerCount) throw new ArgumentException($"hook point '{item}': layer {l} is outside the model's {layerCount} layers", "pattern");
                layer = l;
                everyLayer = false;
            }
            else throw new ArgumentException($"hook point '{item}': '{suffix}' is not a layer number or *", "pattern");
        }
        foreach (var point in PerLayer.Where(p => Glob(name, p)))
        {
            if (layer is int only) picked.Add((point, only));
            else if (everyLayer) for (int l = 0; l < layerCount; l++) picked.Add((point, l));
        }
        if (dot < 0)
            foreach (var point in Global.Where(p => Glob(name, p))) picked.Add((point, -1));
        else if (Global.Contains(name))
            throw new ArgumentException($"hook point '{item}': {name} is outside the blocks and has no layer", "pattern");
    }

    static void ExpandTransformerLens(string item, int layerCount, HashSet<(string, int)> picked)
    {
        // blocks.L.NAME, L a number or *, NAME a TransformerLens hook name (wildcards allowed).
        var rest = item["blocks.".Length..];
        int dot = rest.IndexOf('.');
        if (dot <= 0) throw new ArgumentException($"hook point '{item}' should read blocks.LAYER.NAME", "pattern");
        var layerText = rest[..dot];
        var name = rest[(dot + 1)..];
        IEnumerable<int> layers;
        if (layerText == "*") layers = Enumerable.Range(0, layerCount);
        else if (int.TryParse(layerText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int l))
        {
            if (l >= layerCount) throw new ArgumentException($"hook point '{item}': layer {l} is outside the model's {layerCount} layers", "pattern");
            layers = [l];
        }
        else throw new ArgumentException($"hook point '{item}': '{layerText}' is not a layer number or *", "pattern");
        var points = TransformerLensBlock.Where(p => Glob(name, p.Key)).Select(p => p.Value).ToList();
        foreach (int layer in layers)
            foreach (var point in points) picked.Add((point, layer));
    }

    /// <summary>Matches `text` against `pattern`, where * stands for any run of characters.</summary>
    public static bool Glob(string pattern, string text)
    {
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && pattern[p] == '*') { star = p++; mark = t; }
            else if (p < pattern.Length && pattern[p] == text[t]) { p++; t++; }
            else if (star >= 0) { p = star + 1; t = ++mark; }
            else return false;
        }
        while (p < pattern.Length && pattern[p] == '*') p++;
        return p == pattern.Length;
    }
}
