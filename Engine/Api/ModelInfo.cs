namespace Engine;

/// <summary>How the hidden states of a text's tokens become one embedding vector.</summary>
public enum EmbeddingPooling
{
    /// <summary>The average over every token (llama.cpp's default for most embedding models).</summary>
    Mean,
    /// <summary>The first token's state (BERT-style [CLS]). In the decoder models the engine runs, attention is causal,
    /// so the first token (BOS) sees only itself: every text then gets the same vector. Use it only for models that
    /// declare it.</summary>
    Cls,
    /// <summary>The last token's state (decoder embedding models such as Qwen3-Embedding).</summary>
    Last,
}

/// <summary>The facts of a loaded model, read from its file and fixed for its lifetime.</summary>
public sealed record ModelInfo
{
    /// <summary>The GGUF file or Hugging Face folder the model was loaded from.</summary>
    public required string Path { get; init; }
    /// <summary>The model's name from its metadata (general.name), or the file or folder name.</summary>
    public required string Name { get; init; }
    /// <summary>The architecture as GGUF spells it: llama, qwen2, qwen3, qwen2moe, qwen3moe.</summary>
    public required string Architecture { get; init; }
    /// <summary>Parameters in every weight tensor (embedding and output included; all experts of an MoE model).</summary>
    public required long ParameterCount { get; init; }
    /// <summary>How many weight tensors each storage type holds, by ggml's type names (F32, F16, Q4_K, Q6_K, ...),
    /// the most used first: a Q4_K_M file shows Q4_K and Q6_K.</summary>
    public required IReadOnlyDictionary<string, int> TensorTypes { get; init; }
    /// <summary>Bytes of weights as stored in the file (the resident size of the weights on the CPU).</summary>
    public required long WeightBytes { get; init; }
    /// <summary>The context length the model was trained with.</summary>
    public required int TrainedContextLength { get; init; }
    /// <summary>Tokens a new session holds unless it asks for another length (<see cref="ModelLoadOptions.ContextLength"/>).</summary>
    public required int ContextLength { get; init; }
    /// <summary>Tokens in the vocabulary (the width of a logits row).</summary>
    public required int VocabularySize { get; init; }
    /// <summary>Transformer blocks.</summary>
    public required int LayerCount { get; init; }
    /// <summary>Width of the residual stream (d_model), the length of an embedding vector.</summary>
    public required int EmbeddingLength { get; init; }
    /// <summary>Experts per mixture-of-experts layer; 0 for a dense model.</summary>
    public required int ExpertCount { get; init; }
    /// <summary>Experts each token is routed to; 0 for a dense model.</summary>
    public required int ExpertsPerToken { get; init; }
    /// <summary>The chat template from the model's metadata as Jinja text (GGUF tokenizer.chat_template, or
    /// tokenizer_config.json beside Hugging Face weights); null when the model has none.</summary>
    public string? ChatTemplate { get; init; }
    /// <summary>The built-in chat format the engine renders conversations with (chatml, qwen3, llama3, llama2,
    /// deepseek-r1, ...), recognized from <see cref="ChatTemplate"/> or chosen by <see cref="ModelLoadOptions.ChatTemplate"/>.</summary>
    public required string ChatFormat { get; init; }
    /// <summary>The pooling the model declares for embeddings (GGUF <c>{arch}.pooling_type</c>); null when it declares none.</summary>
    public EmbeddingPooling? Pooling { get; init; }
    /// <summary>The device the model runs on (its first layers, when they are split).</summary>
    public required string Device { get; init; }
    /// <summary>How the KV cache stores keys and values.</summary>
    public KvCacheType KvCacheType { get; init; }
    /// <summary>Tokens the KV cache holds over all sessions together: the most one session can hold.</summary>
    public int KvCacheCapacity { get; init; }
}
