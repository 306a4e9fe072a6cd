using System.Diagnostics;
using System.Text.Json;
using Engine.Tests.Support;

namespace Engine.Tests.Server;

/// <summary>The npm <c>openai</c> and <c>ollama</c> packages against the running server (Engine.Tests/Server/node,
/// installed by .ci/run with npm ci): chat, streamed chat with usage, embeddings and model lists, with the library's
/// greedy text.</summary>
public class NodeClientTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    static readonly string Folder = TestPaths.Repo("Engine.Tests", "Server", "node");

    [NodeClientsFact]
    public async Task Npm_openai_and_ollama_clients_chat_stream_embed_and_list()
    {
        var start = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Folder };
        start.ArgumentList.Add("clients.mjs");
        start.ArgumentList.Add(server.Address.ToString());
        start.ArgumentList.Add(ServerFixture.ModelName);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120)))
            await process.WaitForExitAsync(timeout.Token);
        process.ExitCode.Should().Be(0, await errors);
        var result = JsonDocument.Parse(await output).RootElement;
        var expected = await ServerFixture.LibraryChatAsync("Once upon a time", 12);
        result.GetProperty("openaiChat").GetString().Should().Be(expected);
        result.GetProperty("openaiStream").GetString().Should().Be(expected);
        result.GetProperty("openaiStreamUsage").GetProperty("completion_tokens").GetInt32().Should().BeInRange(1, 12);
        result.GetProperty("ollamaChat").GetString().Should().Be(expected);
        result.GetProperty("ollamaStream").GetString().Should().Be(expected);
        result.GetProperty("openaiEmbeddings").EnumerateArray().Select(e => e.GetInt32()).Should().HaveCount(2).And.OnlyContain(n => n > 0);
        result.GetProperty("ollamaEmbed")[0].GetInt32().Should().BeGreaterThan(0);
        result.GetProperty("openaiModels").EnumerateArray().Select(e => e.GetString()).Should().Contain(ServerFixture.ModelName);
        result.GetProperty("ollamaModels").EnumerateArray().Select(e => e.GetString()).Should().Contain(ServerFixture.ModelName);
    }
}

/// <summary>A fact that needs node and the npm clients installed in Engine.Tests/Server/node; skipped with the reason
/// otherwise.</summary>
public sealed class NodeClientsFactAttribute : FactAttribute
{
    public NodeClientsFactAttribute()
    {
        var modules = TestPaths.Repo("Engine.Tests", "Server", "node", "node_modules");
        if (!Directory.Exists(Path.Combine(modules, "openai")) || !Directory.Exists(Path.Combine(modules, "ollama")))
            Skip = "the npm clients are not installed: run 'npm ci --prefix Engine.Tests/Server/node' (.ci/run does)";
        else if (!OnPath("node"))
            Skip = "node is not on the PATH";
    }

    static bool OnPath(string name) => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator).Any(d => File.Exists(Path.Combine(d, name)));
}
