using Engine.Models;

namespace Engine.Benchmarking;

/// <summary>Bytes of weights one decoded token reads: every matrix of every layer and the output projection
/// once, but only one row of the token embedding (unless it doubles as the output). This is the numerator of
/// the decode ceiling: tokens/s &lt;= memory bandwidth / bytes per token.</summary>
public static unsafe class WeightTraffic
{
    public static long BytesPerToken(LlamaWeights w)
    {
        long bytes = 0;
        foreach (var layer in w.Layers)
            foreach (var m in new[] { layer.Query, layer.Key, layer.Value, layer.Output, layer.Gate, layer.Up, layer.Down })
                bytes += m.View.ByteSize;
        bytes += w.Output.View.ByteSize;
        if (w.Output.View.Pointer != w.TokenEmbedding.View.Pointer) // a tied output already read the whole table
            bytes += w.TokenEmbedding.RowBytes;
        return bytes;
    }
}
