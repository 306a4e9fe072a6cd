namespace Engine;

/// <summary>Which part of a generation a forward step belongs to.</summary>
public enum ForwardPhase
{
    /// <summary>Reading a prompt (or any tokens given to the model): one or more rows of a sequence in one step.</summary>
    Prompt,
    /// <summary>One step of generation: the row of the token the model chose last.</summary>
    Decode,
}

/// <summary>
/// What is passing a hook point: which intermediate, of which layer and sequence, at which positions.
/// <para>Layout of the values handed to the hook: row-wise points are <see cref="Rows"/> x <see cref="Width"/>, row-major,
/// one row per token at positions <see cref="FirstPosition"/>, <see cref="FirstPosition"/> + 1, ... The attention points
/// <c>kq</c> and <c>kq_soft_max</c> are <see cref="Heads"/> x <see cref="Rows"/> x <see cref="Width"/>, where Width is the
/// number of key positions (FirstPosition + Rows: every position these rows may attend to); entries a row may not attend
/// to (keys after its own position) are -∞ in <c>kq</c> and 0 in <c>kq_soft_max</c>.</para>
/// </summary>
/// <param name="Name">The hook point's name, as llama.cpp names the tensor ("l_out", "kq_soft_max", ...).</param>
/// <param name="Layer">The block's index, or -1 outside the blocks (inp_embd, result_norm, result_output).</param>
/// <param name="Sequence">The sequence the rows belong to: a session's <see cref="Session.Id"/>, or the id of a one-off
/// pass (a research run, an embedding).</param>
/// <param name="FirstPosition">The absolute position of the first row in its sequence.</param>
/// <param name="Rows">Tokens in this call.</param>
/// <param name="Width">Values per row, or key positions per row and head for attention points.</param>
/// <param name="Heads">0 for row-wise points; the number of attention heads for <c>kq</c> and <c>kq_soft_max</c>.</param>
/// <param name="Phase">Prompt processing or a decode step.</param>
public readonly record struct HookContext(string Name, int Layer, long Sequence, int FirstPosition, int Rows, int Width, int Heads, ForwardPhase Phase)
{
    /// <summary>The shape of the values: [Rows, Width], or [Heads, Rows, Width] for attention points.</summary>
    public int[] Shape => Heads > 0 ? [Heads, Rows, Width] : [Rows, Width];
}

/// <summary>
/// A research hook: called during a forward pass with an intermediate's values, which it may read or change in place
/// (the rest of the pass then runs on the changed values). Register it with <see cref="Model.AddHook"/> (every sequence)
/// or <see cref="Session.AddHook"/> (one session's). Hooks run on the model's forward-pass thread, between two operations
/// of the pass: they must not call into the model (generate, embed) and should be quick.
/// </summary>
/// <param name="context">Which intermediate, layer, sequence and positions; see <see cref="HookContext"/> for the layout.</param>
/// <param name="values">The values; valid only during the call (copy what you keep).</param>
public delegate void ForwardHook(HookContext context, Span<float> values);
