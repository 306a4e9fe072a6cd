using System.Numerics.Tensors;
using System.Text.Json;
using Engine.Tests.Support;
using Microsoft.Extensions.AI;

namespace Engine.Tests.Api;

/// <summary>Embeddings against llama.cpp's exact mode (F32 KV cache, flash attention off) on the F32 fixtures: the
/// pooled hidden states after the output norm, stored in Engine.Tests/Golden/embeddings.json (made by
/// ../shared/oracle/llama_oracle.py embed; the tests never run the oracle).</summary>
public class EmbeddingTests
{
    sealed record Reference(string Model, string Text, EmbeddingPooling Pooling, int[] Tokens, float[] Embedding);

    static readonly Lazy<IReadOnlyList<Reference>> References = new(() =>
    {
        using var json = JsonDocument.Parse(File.ReadAllText(TestPaths.Repo("Engine.Tests", "Golden", "embeddings.json")));
        return json.RootElement.GetProperty("cases").EnumerateArray().Select(c => new Reference(
            c.GetProperty("model").GetString()!,
            c.GetProperty("text").GetString()!,
            Enum.Parse<EmbeddingPooling>(c.GetProperty("pooling").GetString()!, ignoreCase: true),
            c.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            c.GetProperty("embedding").EnumerateArray().Select(e => e.GetSingle()).ToArray())).ToList();
    });

    public static TheoryData<string> Models() => new(References.Value.Select(r => r.Model).Distinct());

    [Theory]
    [MemberData(nameof(Models))]
    public async Task Pooled_hidden_states_match_llama_cpp_within_1e_4_relative(string fixture)
    {
        using var model = Model.Load(TestPaths.Repo("Engine.Tests", "Fixtures", fixture));
        var cases = References.Value.Where(r => r.Model == fixture).ToList();
        cases.Select(c => c.Pooling).Distinct().Should().Contain([EmbeddingPooling.Mean, EmbeddingPooling.Last]);
        foreach (var reference in cases)
        {
            model.Tokenize(reference.Text).Should().Equal(reference.Tokens, "the text is tokenized as llama.cpp did");
            var vector = await model.EmbedAsync(reference.Text, new EmbeddingOptions { Pooling = reference.Pooling, Normalize = false });
            vector.Should().HaveCount(reference.Embedding.Length);
            var difference = new float[vector.Length];
            TensorPrimitives.Subtract(vector, reference.Embedding, difference);
            double relative = TensorPrimitives.Norm(difference) / TensorPrimitives.Norm(reference.Embedding);
            relative.Should().BeLessThanOrEqualTo(1e-4, $"{reference.Pooling} pooling of '{reference.Text}'");
        }
    }

    [Fact]
    public async Task Normalized_vectors_have_norm_1_and_point_the_same_way()
    {
        using var model = Model.Load(TestPaths.Repo("Engine.Tests", "Fixtures", "fx-qwen2-F32.gguf"));
        string[] texts = ["Hello world", "The quick brown fox jumps over the lazy dog."];
        var raw = await model.EmbedAsync(texts, new EmbeddingOptions { Normalize = false });
        var normalized = await model.EmbedAsync(texts);
        for (int i = 0; i < texts.Length; i++)
        {
            TensorPrimitives.Norm(normalized[i]).Should().BeApproximately(1f, 1e-5f);
            TensorPrimitives.CosineSimilarity(raw[i], normalized[i]).Should().BeApproximately(1f, 1e-5f);
        }
        model.Info.Pooling.Should().BeNull("the fixture declares no pooling, so mean is used");
        var mean = await model.EmbedAsync(texts[0], new EmbeddingOptions { Pooling = EmbeddingPooling.Mean, Normalize = false });
        mean.Should().Equal(raw[0]);
    }

    [Fact]
    public async Task The_embedding_generator_serves_Microsoft_Extensions_AI()
    {
        using var model = Model.Load(TestPaths.Repo("Engine.Tests", "Fixtures", "fx-llama-F32.gguf"));
        using var generator = model.AsEmbeddingGenerator(new EmbeddingOptions { Normalize = false });
        var reference = References.Value.First(r => r.Model == "fx-llama-F32.gguf" && r.Pooling == EmbeddingPooling.Last);
        var result = await generator.GenerateAsync([reference.Text, "Hello world"], new EmbeddingGenerationOptions
        {
            AdditionalProperties = new() { ["pooling"] = "last" },
        });
        result.Should().HaveCount(2);
        var vector = result[0].Vector.ToArray();
        var difference = new float[vector.Length];
        TensorPrimitives.Subtract(vector, reference.Embedding, difference);
        (TensorPrimitives.Norm(difference) / TensorPrimitives.Norm(reference.Embedding)).Should().BeLessThanOrEqualTo(1e-4f);
        result.Usage!.InputTokenCount.Should().Be(reference.Tokens.Length + model.Tokenize("Hello world").Count);
        generator.GetService<EmbeddingGeneratorMetadata>()!.DefaultModelDimensions.Should().Be(model.Info.EmbeddingLength);
        await FluentActions.Awaiting(() => generator.GenerateAsync(["x"], new EmbeddingGenerationOptions { Dimensions = 3 })).Should().ThrowAsync<NotSupportedException>();
    }

    [Fact]
    public async Task Texts_that_cannot_be_embedded_are_refused_with_a_reason()
    {
        using var model = Model.Load(TestPaths.Repo("Engine.Tests", "Fixtures", "fx-llama-F32.gguf"), new ModelLoadOptions { ContextLength = 16 });
        await FluentActions.Awaiting(() => model.EmbedAsync(string.Join(' ', Enumerable.Repeat("word", 40))))
            .Should().ThrowAsync<ArgumentException>().WithMessage("*more than the context of 16*");
        await FluentActions.Awaiting(() => model.EmbedAsync([null!])).Should().ThrowAsync<ArgumentException>();
    }
}
