namespace Engine;

/// <summary>How <see cref="Model.EmbedAsync(IEnumerable{string}, EmbeddingOptions?, System.Threading.CancellationToken)"/>
/// turns texts into vectors.</summary>
public sealed record EmbeddingOptions
{
    /// <summary>How token states become one vector; null (the default) uses the pooling the model declares
    /// (<see cref="ModelInfo.Pooling"/>), and <see cref="EmbeddingPooling.Mean"/> when it declares none.</summary>
    public EmbeddingPooling? Pooling { get; init; }
    /// <summary>Scale each vector to Euclidean length 1 (the default, as llama.cpp's embedding tools do), so a dot
    /// product is the cosine similarity.</summary>
    public bool Normalize { get; init; } = true;
}
