namespace Engine.Convert.Presets;

/// <summary>Llama 3 RoPE frequency scaling (rope_type "llama3" in config.json); llama.cpp's converter stores it as a
/// precomputed rope_freqs tensor rather than as metadata keys.</summary>
public sealed record Llama3RopeScaling(double Factor, double LowFrequencyFactor, double HighFrequencyFactor, int OriginalContextLength);

/// <summary>The mixture-of-experts part of a shape: every layer's FFN is <see cref="ExpertCount"/> experts of
/// <see cref="ExpertFeedForward"/> width, <see cref="ExpertsUsed"/> of them routed per token.</summary>
public sealed record MoeShape(int ExpertCount, int ExpertsUsed, int ExpertFeedForward);

/// <summary>The hyperparameters of one real model (or a small test shape), as its config.json states them.</summary>
public sealed record ModelPreset
{
    public required string Name { get; init; }
    /// <summary>llama.cpp's architecture name: llama, qwen2, qwen3 or qwen3moe.</summary>
    public required string Architecture { get; init; }
    /// <summary>The Hugging Face model whose shape this is (shown by `presets`, written to general.description).</summary>
    public required string ShapeOf { get; init; }
    public required int Hidden { get; init; }
    public required int Layers { get; init; }
    public required int Heads { get; init; }
    public required int KvHeads { get; init; }
    /// <summary>Set when config.json states head_dim (Qwen3); otherwise it is Hidden / Heads.</summary>
    public int? ExplicitHeadDim { get; init; }
    public required int FeedForward { get; init; }
    /// <summary>The embedding rows; null for test shapes, which take the tokenizer's size.</summary>
    public required int? VocabSize { get; init; }
    /// <summary>The llama.cpp vocab-only GGUF (models/ggml-vocab-*.gguf) whose tokenizer the real model uses.</summary>
    public required string VocabFile { get; init; }
    public required int ContextLength { get; init; }
    public required double RopeTheta { get; init; }
    public required double RmsEpsilon { get; init; }
    public required bool TiedOutput { get; init; }
    public Llama3RopeScaling? RopeScaling { get; init; }
    public MoeShape? Moe { get; init; }
    /// <summary>A small shape for tests, not a real model.</summary>
    public bool IsTestShape { get; init; }

    public int HeadDim => ExplicitHeadDim ?? Hidden / Heads;
    /// <summary>Qwen2 has biases on the q, k and v projections.</summary>
    public bool QkvBias => Architecture is "qwen2";
    /// <summary>Qwen3 applies RMSNorm to every q and k head before RoPE.</summary>
    public bool QkNorm => Architecture is "qwen3" or "qwen3moe";
    /// <summary>llama.cpp writes attention.key_length / value_length when the head size is not Hidden / Heads or
    /// config.json names it.</summary>
    public bool WritesHeadDim => ExplicitHeadDim is not null || HeadDim * Heads != Hidden;

    /// <summary>This preset with another layer count (for quick tests of a real shape).</summary>
    public ModelPreset WithLayers(int layers) => this with { Layers = layers };
}
