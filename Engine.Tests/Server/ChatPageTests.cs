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

        // Stop: pressed while the second reply is still arriving; the reply ends as stopped and the server runs nothing.
        // The tiny model can finish a whole reply between two polls of this test, so the page's fetch is wrapped to
        // hand the stream to the page in small pieces, slowly: the stop button then stays enabled for seconds.
        // "New chat" first: the fixture's context (256 tokens) may not hold the first exchange and a second question.
        await browser.EvaluateAsync("document.getElementById('clear').click()");
        await browser.EvaluateAsync(SlowStreamingFetch);
        await browser.EvaluateAsync("document.getElementById('input').value = 'Tell me a long story'; document.getElementById('send').click()");
        await browser.WaitForAsync(
            "document.getElementById('stop').disabled === false && document.querySelector('.msg.assistant')?.querySelector('.content').textContent.length > 0",
            TimeSpan.FromSeconds(20), "the second reply to show text with the stop button enabled");
        await browser.EvaluateAsync("document.getElementById('stop').click()");
        await browser.WaitForAsync("document.querySelector('.msg.assistant')?.dataset.done === 'true'", TimeSpan.FromSeconds(20), "the stopped reply to end");
        (await browser.EvaluateAsync("document.querySelector('.msg.assistant').dataset.stopped === 'true'")).ValueKind
            .Should().Be(JsonValueKind.True, "the reply ended because stop was pressed, not because it was complete");
        (await browser.EvaluateAsync("document.getElementById('send').disabled")).ValueKind.Should().Be(JsonValueKind.False);
        var model = server.Server.Catalog.Find(ServerFixture.ModelName).Loaded!;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (model.KvCacheStatistics.RunningRequests > 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
        model.KvCacheStatistics.RunningRequests.Should().Be(0);
    }

    /// <summary>Replaces the page's fetch so that chat-completion streams reach the page 48 bytes every 100 ms;
    /// the page's abort still reaches the real request through its signal.</summary>
    const string SlowStreamingFetch = """
        (() => {
          const realFetch = window.fetch;
          window.fetch = async (url, options) => {
            const response = await realFetch(url, options);
            if (!String(url).includes('/v1/chat/completions') || !response.body) return response;
            const reader = response.body.getReader();
            let pending = new Uint8Array(0);
            const slowed = new ReadableStream({
              async pull(controller) {
                await new Promise(resolve => setTimeout(resolve, 100));
                if (options?.signal?.aborted) { controller.error(new DOMException('The user aborted a request.', 'AbortError')); return; }
                try {
                  if (pending.length === 0) {
                    const { value, done } = await reader.read();
                    if (done) { controller.close(); return; }
                    pending = value;
                  }
                  controller.enqueue(pending.slice(0, 48));
                  pending = pending.slice(48);
                } catch (e) { controller.error(e); }
              },
              cancel(reason) { return reader.cancel(reason); }
            });
            return new Response(slowed, { status: response.status, statusText: response.statusText, headers: response.headers });
          };
        })()
        """;
}
