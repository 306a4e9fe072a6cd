namespace Engine.Models;

/// <summary>How RoPE pairs the dimensions of a head. "Normal" (GGUF llama, llama2.c) rotates adjacent pairs
/// (2i, 2i+1); NeoX (Qwen, and every Hugging Face checkpoint) rotates i with i + d/2 ("rotate half").</summary>
internal enum RopeStyle { Normal, NeoX }

/// <summary>Context-extension schemes that rescale RoPE frequencies.</summary>
internal enum RopeScalingType { None, Linear, Yarn, Llama3 }

internal sealed record RopeScaling(
    RopeScalingType Type,
    double Factor = 1,
    int OriginalContextLength = 0,
    double LowFrequencyFactor = 1,
    double HighFrequencyFactor = 4,
    double YarnBetaFast = 32,
    double YarnBetaSlow = 1,
    double YarnAttentionFactor = 0)
{
    public static readonly RopeScaling None = new(RopeScalingType.None);
}

/// <summary>How a router's logits become the probabilities that choose and weight the experts.</summary>
internal enum ExpertGating { Softmax, Sigmoid }

/// <summary>One validated description of a model, whether it came from GGUF metadata or a Hugging Face
/// config.json: the model code never asks where it came from.</summary>
internal sealed record ModelConfig
{
    /// <summary>Architecture name as GGUF spells it: llama, qwen2, qwen3, qwen2moe, qwen3moe.</summary>
    public required string Architecture { get; init; }
    public required int EmbeddingLength { get; init; }   // d_model
    public required int LayerCount { get; init; }
    public required int HeadCount { get; init; }         // query heads
    public required int KvHeadCount { get; init; }       // key/value heads (grouped-query attention)
    public required int HeadDim { get; init; }           // per-head width of q and k
    public required int ValueHeadDim { get; init; }      // per-head width of v
    public required int FeedForwardLength { get; init; } // SwiGLU hidden width
    public required int VocabSize { get; init; }
    public required int TrainedContextLength { get; init; }
    public required float RmsNormEpsilon { get; init; }
    public required double RopeTheta { get; init; }
    public required int RopeDimensions { get; init; }    // leading dims of each head that are rotated
    public required RopeStyle RopeStyle { get; init; }
    public RopeScaling RopeScaling { get; init; } = RopeScaling.None;
    /// <summary>True when there is no separate output projection and the embedding is reused.</summary>
    public bool TiedOutput { get; init; }

    // ---- Mixture of experts. ExpertCount == 0: a dense model, every layer has the one SwiGLU feed-forward.
    /// <summary>Experts in each MoE layer.</summary>
    public int ExpertCount { get; init; }
    /// <summary>Experts each token is routed to (the k of top-k).</summary>
    public int ExpertsPerToken { get; init; }
    /// <summary>Hidden width of one expert's SwiGLU (FeedForwardLength stays the width of dense layers).</summary>
    public int ExpertFeedForwardLength { get; init; }
    /// <summary>Hidden width of the shared expert every token also passes through (qwen2moe); 0: none.</summary>
    public int SharedExpertFeedForwardLength { get; init; }
    /// <summary>Rescale the chosen experts' probabilities to sum to 1 (Hugging Face norm_topk_prob; llama.cpp
    /// fixes it per architecture).</summary>
    public bool NormalizeExpertWeights { get; init; }
    public ExpertGating ExpertGating { get; init; } = ExpertGating.Softmax;
    /// <summary>Layers of an MoE model that keep a dense feed-forward (Hugging Face mlp_only_layers and
    /// decoder_sparse_step); empty for GGUF, where llama.cpp makes every layer of these architectures MoE.</summary>
    public IReadOnlyList<int> DenseLayers { get; init; } = [];

    /// <summary>True when layer's feed-forward is a mixture of experts rather than one SwiGLU.</summary>
    public bool IsMoeLayer(int layer) => ExpertCount > 0 && !DenseLayers.Contains(layer);

    public int QueryWidth => HeadCount * HeadDim;
    public int KeyWidth => KvHeadCount * HeadDim;
    public int ValueWidth => KvHeadCount * ValueHeadDim;
    /// <summary>Query heads that share one key/value head.</summary>
    public int GroupSize => HeadCount / KvHeadCount;
}
