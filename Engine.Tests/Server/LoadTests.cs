using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Engine.Server;
using Xunit.Abstractions;

namespace Engine.Tests.Server;

/// <summary>32 streaming clients against one server on loopback for a bounded time (ENGINE_LOAD_SECONDS, default 120):
/// no errors, every stream complete (finish reason, usage, [DONE]); prints the time to first token (p50/p99) and the
/// aggregate generated tokens/s, which docs/serving.md records. ENGINE_LOAD_REPORT=FILE writes them as JSON.</summary>
public class LoadTests(ITestOutputHelper output)
{
    const int Clients = 32;

    static readonly string[] Prompts =
    [
        "Once upon a time", "The little dog", "Lily and Ben went to the park", "One day, a cat", "Tom had a red ball",
        "The sun was shining", "Mom said", "There was a big tree",
    ];

    [Fact]
    public async Task Thirty_two_streaming_clients_all_complete_without_errors()
    {
        int seconds = int.TryParse(Environment.GetEnvironmentVariable("ENGINE_LOAD_SECONDS"), out var s) && s > 0 ? s : 120;
        var options = ServerFixture.Options();
        await using var server = EngineServer.Create(options with
        {
            Models = [ServerFixture.ModelPath],
            LoadOptions = options.LoadOptions with { ParallelSequences = Clients, KvCacheType = KvCacheType.F16 },
        });
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(120) };
        // Loaded before the clock starts: the figures are of serving, not of loading.
        using (var warm = await http.PostAsync("/v1/chat/completions", new StringContent(JsonSerializer.Serialize(new
               { model = ServerFixture.ModelName, messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 1 }), Encoding.UTF8, "application/json")))
            warm.EnsureSuccessStatusCode();
        var firstTokenTimes = new System.Collections.Concurrent.ConcurrentBag<double>();
        var errors = new System.Collections.Concurrent.ConcurrentBag<string>();
        long completionTokens = 0, streams = 0;
        var clock = Stopwatch.StartNew();
        var end = TimeSpan.FromSeconds(seconds);

        async Task Client(int index)
        {
            var rng = new Random(index);
            while (clock.Elapsed < end)
            {
                var body = JsonSerializer.Serialize(new
                {
                    model = ServerFixture.ModelName,
                    messages = new[] { new { role = "user", content = Prompts[rng.Next(Prompts.Length)] } },
                    max_tokens = 64,
                    temperature = 0.8,
                    seed = rng.Next(),
                    stream = true,
                    stream_options = new { include_usage = true },
                });
                var started = clock.Elapsed;
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
                    using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                    if (!response.IsSuccessStatusCode) { errors.Add($"HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}"); continue; }
                    using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                    bool first = true, done = false, finished = false;
                    int tokens = -1;
                    while (await reader.ReadLineAsync() is { } line)
                    {
                        if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                        var data = line[6..];
                        if (data == "[DONE]") { done = true; break; }
                        using var chunk = JsonDocument.Parse(data);
                        var root = chunk.RootElement;
                        if (root.TryGetProperty("error", out var error)) { errors.Add(error.ToString()); break; }
                        if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object) tokens = usage.GetProperty("completion_tokens").GetInt32();
                        var choices = root.GetProperty("choices");
                        if (choices.GetArrayLength() == 0) continue;
                        var choice = choices[0];
                        if (first && choice.GetProperty("delta").TryGetProperty("content", out var c) && c.GetString()!.Length > 0)
                        {
                            firstTokenTimes.Add((clock.Elapsed - started).TotalSeconds);
                            first = false;
                        }
                        if (choice.GetProperty("finish_reason").ValueKind == JsonValueKind.String) finished = true;
                    }
                    if (!done || !finished || tokens < 0) { errors.Add($"incomplete stream: done={done} finished={finished} usage={tokens}"); continue; }
                    Interlocked.Add(ref completionTokens, tokens);
                    Interlocked.Increment(ref streams);
                }
                catch (Exception e) { errors.Add(e.GetType().Name + ": " + e.Message); }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, Clients).Select(i => Task.Run(() => Client(i))));
        var elapsed = clock.Elapsed.TotalSeconds;
        var sorted = firstTokenTimes.OrderBy(t => t).ToArray();
        double Percentile(double p) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
        var report = new
        {
            clients = Clients, seconds = Math.Round(elapsed, 1), streams, completion_tokens = completionTokens,
            tokens_per_second = Math.Round(completionTokens / elapsed, 1),
            ttft_p50_ms = Math.Round(Percentile(0.50) * 1000, 1), ttft_p99_ms = Math.Round(Percentile(0.99) * 1000, 1),
            errors = errors.Count,
        };
        var json = JsonSerializer.Serialize(report);
        output.WriteLine(json);
        if (Environment.GetEnvironmentVariable("ENGINE_LOAD_REPORT") is { Length: > 0 } file) await File.WriteAllTextAsync(file, json);
        errors.Should().BeEmpty();
        streams.Should().BeGreaterThanOrEqualTo(Clients, "every client completed at least one stream");
        sorted.Length.Should().Be((int)streams, "every complete stream produced text");
    }
}
