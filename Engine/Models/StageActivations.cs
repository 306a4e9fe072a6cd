using Engine.Backends;

namespace Engine.Models;

/// <summary>The activations of one stage for up to maxBatch tokens, allocated once in the stage's backend
/// (the forward pass allocates nothing). Names are llama.cpp's, so observers see the same intermediates.</summary>
sealed class StageActivations
{
    public readonly LayerStage Stage;
    public IBackend Backend => Stage.Backend;
    /// <summary>x: the residual stream; the rest are scratch of one layer.</summary>
    public readonly ActivationBuffer X, Norm, Q, K, V, Attention, Projected;
    /// <summary>Only in the stage that computes the logits (the last).</summary>
    public readonly ActivationBuffer? Gathered, Logits;
    public readonly SwiGluFeedForward SwiGlu;
    public readonly MoeFeedForward? Experts;

    /// <summary>Floats one stage's activations take in its backend: what the constructor allocates (the feed-forwards'
    /// scratch and, in an MoE model, the expert routing's buffers included). <c>engine estimate</c> counts with it.</summary>
    public static long Floats(ModelConfig config, int maxBatch, bool computesLogits)
    {
        long b = maxBatch, c = config.EmbeddingLength;
        long floats = b * (3 * c + config.QueryWidth + config.KeyWidth + config.ValueWidth + (long)config.HeadCount * config.ValueHeadDim);
        int widestHidden = Math.Max(config.FeedForwardLength, Math.Max(config.ExpertFeedForwardLength, config.SharedExpertFeedForwardLength));
        floats += SwiGluFeedForward.Floats(maxBatch, widestHidden);
        if (config.ExpertCount > 0) floats += MoeFeedForward.Floats(config, maxBatch);
        if (computesLogits) floats += b * c + b * config.VocabSize;
        return floats;
    }

    public StageActivations(LayerStage stage, ModelConfig config, int maxBatch, bool computesLogits)
    {
        Stage = stage;
        var backend = stage.Backend;
        int b = maxBatch, c = config.EmbeddingLength;
        X = backend.Allocate("x", b * c);
        Norm = backend.Allocate("norm", b * c);
        Q = backend.Allocate("Qcur", b * config.QueryWidth);
        K = backend.Allocate("Kcur", b * config.KeyWidth);
        V = backend.Allocate("Vcur", b * config.ValueWidth);
        Attention = backend.Allocate("kqv_out", b * config.HeadCount * config.ValueHeadDim);
        Projected = backend.Allocate("proj", b * c);
        int widestHidden = Math.Max(config.FeedForwardLength, Math.Max(config.ExpertFeedForwardLength, config.SharedExpertFeedForwardLength));
        SwiGlu = new SwiGluFeedForward(backend, b, widestHidden);
        if (config.ExpertCount > 0) Experts = new MoeFeedForward(backend, config, SwiGlu, b);
        if (computesLogits)
        {
            Gathered = backend.Allocate("logit_rows", b * c);
            Logits = backend.Allocate("result_output", b * config.VocabSize);
        }
    }
}
