using Engine.Models;

namespace Engine.Benchmarking;

/// <summary>Bytes of weights one decoded token reads: every attention matrix and the output projection once,
/// one row of the token embedding (unless it doubles as the output), and of a mixture-of-experts layer only
/// the router, the experts a token is routed to, and the shared expert. This is the numerator of the decode
/// ceiling: tokens/s &lt;= memory bandwidth / bytes per token.</summary>
internal static unsafe class WeightTraffic
{
    public static long BytesPerToken(LlamaWeights w, ModelConfig config) => BytesPerToken(w, config, 0, w.Layers.Length);

    /// <summary>The share of layers [firstLayer, firstLayer + layerCount), one stage of a split model: the stage with
    /// layer 0 also embeds the token, the one with the last layer also computes the logits.</summary>
    public static long BytesPerToken(LlamaWeights w, ModelConfig config, int firstLayer, int layerCount)
    {
        bool first = firstLayer == 0, last = firstLayer + layerCount == w.Layers.Length;
        long bytes = 0;
        foreach (var layer in w.Layers.AsSpan(firstLayer, layerCount))
        {
            bytes += layer.Query.View.ByteSize + layer.Key.View.ByteSize + layer.Value.View.ByteSize + layer.Output.View.ByteSize;
            bytes += FeedForwardBytes(layer.FeedForward, config.ExpertsPerToken);
        }
        if (last) bytes += w.Output.View.ByteSize;
        // A tied output already read the whole table when the same stage computes the logits.
        bool tiedHere = last && ReferenceEquals(w.Output, w.TokenEmbedding);
        if (first && !tiedHere) bytes += w.TokenEmbedding.RowBytes;
        return bytes;
    }

    static long FeedForwardBytes(FeedForwardWeights ffn, int expertsPerToken) => ffn switch
    {
        SwiGluWeights s => s.Gate.View.ByteSize + s.Up.View.ByteSize + s.Down.View.ByteSize,
        // Experts of one layer share a shape, so k of them cost k times the first one's bytes.
        MixtureOfExpertsWeights m => m.Router.View.ByteSize
            + expertsPerToken * FeedForwardBytes(m.Expert(0), 0)
            + (m.SharedExpert is { } shared ? FeedForwardBytes(shared, 0) : 0)
            + (m.SharedExpertGate?.View.ByteSize ?? 0),
        _ => throw new NotSupportedException(ffn.GetType().Name),
    };
}
