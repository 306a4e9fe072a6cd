using System.ClientModel;
using Microsoft.Extensions.AI;
using OllamaSharp;
using OpenAI;

namespace Engine.Tests.Server;

/// <summary>The official OpenAI .NET SDK (through Microsoft.Extensions.AI.OpenAI) and OllamaSharp against the running
/// server: chat, streamed chat, embeddings and model listing, as applications use them.</summary>
public class RealClientTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    const string Prompt = "Once upon a time";

    OpenAIClient OpenAi() => new(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(server.Address, "/v1") });

    [Fact]
    public async Task OpenAI_sdk_chats_streams_embeds_and_lists()
    {
        IChatClient chat = OpenAi().GetChatClient(ServerFixture.ModelName).AsIChatClient();
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 12 };
        var expected = await ServerFixture.LibraryChatAsync(Prompt, 12);

        var response = await chat.GetResponseAsync(Prompt, options);
        response.Text.Should().Be(expected);
        response.Usage!.OutputTokenCount.Should().BeInRange(1, 12);
        response.Usage.InputTokenCount.Should().BeGreaterThan(0);

        var streamed = new System.Text.StringBuilder();
        await foreach (var update in chat.GetStreamingResponseAsync(Prompt, options)) streamed.Append(update.Text);
        streamed.ToString().Should().Be(expected);

        IEmbeddingGenerator<string, Embedding<float>> embedder = OpenAi().GetEmbeddingClient(ServerFixture.ModelName).AsIEmbeddingGenerator();
        var vectors = await embedder.GenerateAsync(["a cat", "a dog"]);
        vectors.Should().HaveCount(2);
        vectors[0].Vector.Length.Should().BeGreaterThan(0);

        var models = new List<string>();
        foreach (var m in (await OpenAi().GetOpenAIModelClient().GetModelsAsync()).Value) models.Add(m.Id);
        models.Should().Contain(ServerFixture.ModelName);
    }

    [Fact]
    public async Task OllamaSharp_chats_streams_embeds_and_lists()
    {
        using var ollama = new OllamaApiClient(server.Address, ServerFixture.ModelName);
        var expected = await ServerFixture.LibraryChatAsync(Prompt, 12);
        IChatClient chat = ollama;
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 12 };

        var response = await chat.GetResponseAsync(Prompt, options);
        response.Text.Should().Be(expected);

        var streamed = new System.Text.StringBuilder();
        await foreach (var update in chat.GetStreamingResponseAsync(Prompt, options)) streamed.Append(update.Text);
        streamed.ToString().Should().Be(expected);

        var models = await ollama.ListLocalModelsAsync();
        models.Select(m => m.Name).Should().Contain(ServerFixture.ModelName);
        (await ollama.IsRunningAsync()).Should().BeTrue();

        IEmbeddingGenerator<string, Embedding<float>> embedder = ollama;
        var vectors = await embedder.GenerateAsync(["a cat"]);
        vectors[0].Vector.Length.Should().BeGreaterThan(0);
    }
}
