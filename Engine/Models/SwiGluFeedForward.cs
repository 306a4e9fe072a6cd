using Engine.Backends;

namespace Engine.Models;

/// <summary>The SwiGLU feed-forward, output = W_down · (silu(W_gate · x) ⊙ (W_up · x)), for a batch of rows.
/// One instance serves every dense layer and every expert (an expert is just a narrower SwiGLU run on the
/// tokens routed to it), so its scratch is allocated once, for the widest hidden width.</summary>
internal sealed class SwiGluFeedForward
{
    readonly IBackend _backend;
    readonly ActivationBuffer _gate, _up, _hidden;

    /// <summary>Floats the constructor allocates.</summary>
    public static long Floats(int maxRows, int maxHiddenWidth) => 3L * maxRows * maxHiddenWidth;

    public SwiGluFeedForward(IBackend backend, int maxRows, int maxHiddenWidth)
    {
        _backend = backend;
        _gate = backend.Allocate("ffn_gate", maxRows * maxHiddenWidth);
        _up = backend.Allocate("ffn_up", maxRows * maxHiddenWidth);
        _hidden = backend.Allocate("ffn_act", maxRows * maxHiddenWidth);
    }

    /// <summary>output (rows x d_model) = the feed-forward of x (rows x d_model). `hooks` are the hook points of a dense
    /// layer's feed-forward (ffn_gate, ffn_up, ffn_swiglu); null for none (experts and the shared expert).</summary>
    public void Forward(SwiGluWeights w, ActivationBuffer x, int rows, ActivationBuffer output, HookSite? hooks = null)
    {
        var be = _backend;
        be.MatMul(w.Gate, x, rows, _gate);
        hooks?.Point("ffn_gate", _gate, w.HiddenWidth);
        be.MatMul(w.Up, x, rows, _up);
        hooks?.Point("ffn_up", _up, w.HiddenWidth);
        be.SwiGlu(_gate, _up, rows * w.HiddenWidth, _hidden);
        hooks?.Point("ffn_swiglu", _hidden, w.HiddenWidth);      // one value per neuron
        be.MatMul(w.Down, _hidden, rows, output);
    }
}
