using System.Text.Json;
using Microsoft.Extensions.AI;

namespace Engine;

/// <summary>A <see cref="Model"/> as a Microsoft.Extensions.AI embedding generator: each text's final hidden states
/// pooled (the model's declared pooling, or mean) and L2-normalized unless <see cref="EmbeddingOptions"/> say otherwise.
/// Per request, <see cref="EmbeddingGenerationOptions.AdditionalProperties"/> may set <c>pooling</c> (mean, cls, last)
/// and <c>normalize</c> (true, false).</summary>
public sealed class EngineEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    readonly Model _model;
    readonly EmbeddingOptions _options;
    readonly EmbeddingGeneratorMetadata _metadata;

    /// <summary>An embedding generator over <paramref name="model"/>; the model stays owned by the caller.</summary>
    /// <param name="model">The loaded model.</param>
    /// <param name="options">Pooling and normalization; null for the model's pooling, normalized.</param>
    public EngineEmbeddingGenerator(Model model, EmbeddingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _options = options ?? new EmbeddingOptions();
        _metadata = new EmbeddingGeneratorMetadata("engine", null, model.Info.Name, model.Info.EmbeddingLength);
    }

    /// <inheritdoc/>
    public async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        var texts = values.ToList();
        var request = _options;
        if (options?.Dimensions is int dimensions && dimensions != _model.Info.EmbeddingLength)
            throw new NotSupportedException($"this model's embeddings have {_model.Info.EmbeddingLength} dimensions; {dimensions} were asked for");
        if (options?.AdditionalProperties is { } extra)
        {
            if (extra.TryGetValue("pooling", out var pooling))
                request = request with { Pooling = Text(pooling)?.ToLowerInvariant() switch
                {
                    "mean" => EmbeddingPooling.Mean,
                    "cls" => EmbeddingPooling.Cls,
                    "last" => EmbeddingPooling.Last,
                    _ => throw new ArgumentException($"pooling must be mean, cls or last, got '{pooling}'", nameof(options)),
                } };
            if (extra.TryGetValue("normalize", out var normalize))
                request = request with { Normalize = EngineChatClient.Flag(normalize, "normalize") };
        }
        var (vectors, tokens) = await _model.EmbedCountingAsync(texts, request, cancellationToken).ConfigureAwait(false);
        var created = DateTimeOffset.UtcNow;
        var result = new GeneratedEmbeddings<Embedding<float>>(vectors.Select(v => new Embedding<float>(v) { ModelId = _model.Info.Name, CreatedAt = created }))
        {
            Usage = new UsageDetails { InputTokenCount = tokens, TotalTokenCount = tokens },
        };
        return result;
    }

    static string? Text(object? value) => value is JsonElement e ? e.ToString() : value?.ToString();

    /// <inheritdoc/>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(EmbeddingGeneratorMetadata)) return _metadata;
        if (serviceType == typeof(Model)) return _model;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Nothing to return: the generator holds no memory of its own, and the model stays open.</summary>
    public void Dispose() { }
}
