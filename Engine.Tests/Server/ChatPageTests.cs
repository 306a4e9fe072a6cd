using System.Text.Json;
using Engine.Tests.Support;

namespace Engine.Tests.Server;

/// <summary>The built-in chat page in a real headless Chromium: it lists the models, streams a reply to a typed
/// message, and the stop button ends a reply (and its generation on the server).</summary>
public class ChatPageTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task The_root_serves_the_page_to_browsers_and_status_text_to_other_clients()
    {
        using var html = new HttpRequestMessage(HttpMethod.Get, "/");
        html.Headers.Accept.ParseAdd("text/html");
        using var page = await server.Http.SendAsync(html);
        page.Content.Headers.ContentType!.MediaType.Should().Be("text/html");
        (await page.Content.ReadAsStringAsync()).Should().Contain("/v1/chat/completions");
        page.Headers.GetValues("Content-Security-Policy").Single().Should().Contain("default-src 'self'");
        (await server.Http.GetStringAsync("/")).Should().Be("Ollama is running");
    }

    [BrowserFact]
    public async Task Typing_a_message_streams_a_reply_and_stop_ends_one()
    {
        await using var browser = await HeadlessBrowser.StartAsync();
        await browser.NavigateAsync(server.Address);
        await browser.WaitForAsync("document.querySelectorAll('#model option').length === 2", TimeSpan.FromSeconds(20), "the model list");
        await browser.EvaluateAsync($"document.getElementById('model').value = '{ServerFixture.ModelName}'");

        await browser.EvaluateAsync("document.getElementById('input').value = 'Once upon a time'; document.getElementById('send').click()");
        await browser.WaitForAsync("document.querySelector('.msg.assistant')?.dataset.done === 'true'", TimeSpan.FromSeconds(60), "the reply to finish");
        var reply = (await browser.EvaluateAsync("document.querySelector('.msg.assistant .content').textContent")).GetString();
        reply.Should().NotBeNullOrWhiteSpace("the streamed reply is shown");
        (await browser.EvaluateAsync("document.querySelector('.msg.user .content').textContent")).GetString().Should().Be("Once upon a time");
        (await browser.EvaluateAsync("document.querySelector('.msg.assistant .error') === null")).ValueKind.Should().Be(JsonValueKind.True);
        if (Environment.GetEnvironmentVariable("ENGINE_SCREENSHOT") is { Length: > 0 } shot)
            await File.WriteAllBytesAsync(shot, await browser.ScreenshotAsync());

        // Stop: pressed as soon as the second reply shows text; the reply ends and the server runs nothing.
        await browser.EvaluateAsync("document.getElementById('input').value = 'Tell me a long story'; document.getElementById('send').click()");
        await browser.WaitForAsync("document.getElementById('stop').disabled === false", TimeSpan.FromSeconds(20), "the stop button to be enabled");
        await browser.EvaluateAsync("document.getElementById('stop').click()");
        await browser.WaitForAsync("document.querySelectorAll('.msg.assistant')[1]?.dataset.done === 'true'", TimeSpan.FromSeconds(20), "the stopped reply to end");
        (await browser.EvaluateAsync("document.getElementById('send').disabled")).ValueKind.Should().Be(JsonValueKind.False);
        var model = server.Server.Catalog.Find(ServerFixture.ModelName).Loaded!;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (model.KvCacheStatistics.RunningRequests > 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
        model.KvCacheStatistics.RunningRequests.Should().Be(0);
    }
}
