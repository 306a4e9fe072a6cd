using Engine.Backends;

namespace Engine.Models;

/// <summary>The SwiGLU feed-forward, output = W_down · (silu(W_gate · x) ⊙ (W_up · x)), for a batch of rows.
/// One instance serves every dense layer and every expert (an expert is just a narrower SwiGLU run on the
/// tokens routed to it), so its scratch is allocated once, for the widest hidden width.</summary>
internal sealed class SwiGluFeedForward
{
    readonly IBackend _backend;
    readonly ActivationBuffer _gate, _up, _hidden;

    public SwiGluFeedForward(IBackend backend, int maxRows, int maxHiddenWidth)
    {
        _backend = backend;
        _gate = backend.Allocate("ffn_gate", maxRows * maxHiddenWidth);
        _up = backend.Allocate("ffn_up", maxRows * maxHiddenWidth);
        _hidden = backend.Allocate("ffn_act", maxRows * maxHiddenWidth);
    }

    /// <summary>output (rows x d_model) = the feed-forward of x (rows x d_model).</summary>
    public void Forward(SwiGluWeights w, ActivationBuffer x, int rows, ActivationBuffer output)
    {
        var be = _backend;
        be.MatMul(w.Gate, x, rows, _gate);
        be.MatMul(w.Up, x, rows, _up);
        be.SwiGlu(_gate, _up, rows * w.HiddenWidth, _hidden);
        be.MatMul(w.Down, _hidden, rows, output);
    }
}
