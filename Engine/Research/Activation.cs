namespace Engine;

/// <summary>One recorded intermediate: its values, row-major, and their shape ([tokens, width], or [heads, tokens, keys]
/// for attention scores and patterns).</summary>
/// <param name="Shape">The dimensions, outermost first.</param>
/// <param name="Values">The values; Shape's product of them.</param>
public sealed record Activation(int[] Shape, float[] Values)
{
    /// <summary>Row `index` of a [tokens, width] activation (one token's values).</summary>
    public ReadOnlySpan<float> Row(int index)
    {
        int width = Shape[^1];
        return Values.AsSpan(index * width, width);
    }
}
