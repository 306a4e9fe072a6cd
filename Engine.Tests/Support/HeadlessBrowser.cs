using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace Engine.Tests.Support;

/// <summary>A headless Chromium driven through the DevTools protocol over its WebSocket (no driver package): navigate,
/// evaluate JavaScript, take a screenshot. Used by the chat page's test.</summary>
public sealed class HeadlessBrowser : IAsyncDisposable
{
    readonly Process _process;
    readonly ClientWebSocket _socket;
    readonly DirectoryInfo _profile;
    int _nextId;

    HeadlessBrowser(Process process, ClientWebSocket socket, DirectoryInfo profile)
    {
        _process = process;
        _socket = socket;
        _profile = profile;
    }

    /// <summary>The Chromium executable on the PATH (Debian's chromium, or Chrome), or null.</summary>
    public static string? Executable { get; } = FindExecutable();

    /// <summary>Why the browser tests skip when there is no browser.</summary>
    public const string Missing = "no chromium on the PATH (CI installs Debian's chromium; apt-get install chromium)";

    static string? FindExecutable()
    {
        foreach (var name in new[] { "chromium", "chromium-browser", "google-chrome", "google-chrome-stable" })
            foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
            {
                var path = Path.Combine(dir, name);
                if (File.Exists(path)) return path;
            }
        return null;
    }

    public static async Task<HeadlessBrowser> StartAsync()
    {
        var exe = Executable ?? throw new InvalidOperationException(Missing);
        var profile = Directory.CreateTempSubdirectory("engine-chromium-");
        var start = new ProcessStartInfo(exe)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                     "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", $"--user-data-dir={profile.FullName}",
                     "--window-size=1100,800", "about:blank" })
            start.ArgumentList.Add(a);
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {exe}");
        // Drained in the background for the browser's lifetime, so a full pipe never blocks it.
        _ = process.StandardOutput.BaseStream.CopyToAsync(Stream.Null).ContinueWith(_ => { });
        // Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" on stderr.
        string? browserUrl = null;
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
            while (browserUrl is null)
            {
                var line = await process.StandardError.ReadLineAsync(timeout.Token) ?? throw new InvalidOperationException("chromium exited before it listened");
                int at = line.IndexOf("ws://", StringComparison.Ordinal);
                if (line.Contains("DevTools listening", StringComparison.Ordinal) && at >= 0) browserUrl = line[at..].Trim();
            }
        _ = process.StandardError.BaseStream.CopyToAsync(Stream.Null).ContinueWith(_ => { });
        var port = new Uri(browserUrl).Port;
        using var http = new HttpClient();
        using var targets = JsonDocument.Parse(await http.GetStringAsync($"http://127.0.0.1:{port}/json/list"));
        var page = targets.RootElement.EnumerateArray().First(t => t.GetProperty("type").GetString() == "page");
        var socket = new ClientWebSocket();
        await socket.ConnectAsync(new Uri(page.GetProperty("webSocketDebuggerUrl").GetString()!), CancellationToken.None);
        return new HeadlessBrowser(process, socket, profile);
    }

    /// <summary>Sends one DevTools command and returns its result (events in between are skipped).</summary>
    public async Task<JsonElement> SendAsync(string method, object? parameters = null)
    {
        int id = Interlocked.Increment(ref _nextId);
        var message = JsonSerializer.SerializeToUtf8Bytes(new { id, method, @params = parameters ?? new { } });
        await _socket.SendAsync(message, WebSocketMessageType.Text, true, CancellationToken.None);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var buffer = new byte[1 << 16];
        for (;;)
        {
            using var received = new MemoryStream();
            WebSocketReceiveResult result;
            do
            {
                result = await _socket.ReceiveAsync(buffer, timeout.Token);
                received.Write(buffer, 0, result.Count);
            } while (!result.EndOfMessage);
            using var doc = JsonDocument.Parse(received.ToArray());
            if (!doc.RootElement.TryGetProperty("id", out var got) || got.GetInt32() != id) continue;
            if (doc.RootElement.TryGetProperty("error", out var error)) throw new InvalidOperationException($"{method}: {error}");
            return doc.RootElement.GetProperty("result").Clone();
        }
    }

    /// <summary>Evaluates JavaScript in the page (awaiting a promise) and returns its value.</summary>
    public async Task<JsonElement> EvaluateAsync(string expression)
    {
        var result = await SendAsync("Runtime.evaluate", new { expression, returnByValue = true, awaitPromise = true });
        if (result.TryGetProperty("exceptionDetails", out var exception)) throw new InvalidOperationException($"page script failed: {exception}");
        return result.GetProperty("result").TryGetProperty("value", out var value) ? value.Clone() : default;
    }

    /// <summary>Waits until the expression is true in the page.</summary>
    public async Task WaitForAsync(string condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if ((await EvaluateAsync($"!!({condition})")).ValueKind == JsonValueKind.True) return;
            await Task.Delay(50);
        }
        throw new TimeoutException($"waited {timeout.TotalSeconds:0} s for {what}");
    }

    public async Task NavigateAsync(Uri address)
    {
        await SendAsync("Page.enable");
        await SendAsync("Page.navigate", new { url = address.ToString() });
        await WaitForAsync("document.readyState === 'complete'", TimeSpan.FromSeconds(30), "the page to load");
    }

    public async Task<byte[]> ScreenshotAsync() =>
        System.Convert.FromBase64String((await SendAsync("Page.captureScreenshot", new { format = "png" })).GetProperty("data").GetString()!);

    public async ValueTask DisposeAsync()
    {
        try { await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None); } catch (WebSocketException) { }
        _socket.Dispose();
        try { _process.Kill(entireProcessTree: true); await _process.WaitForExitAsync(); } catch (InvalidOperationException) { }
        _process.Dispose();
        try { _profile.Delete(recursive: true); } catch (IOException) { }
    }
}

/// <summary>A fact that needs a headless Chromium; reported as skipped with the reason when there is none.</summary>
public sealed class BrowserFactAttribute : FactAttribute
{
    public BrowserFactAttribute()
    {
        if (HeadlessBrowser.Executable is null) Skip = HeadlessBrowser.Missing;
    }
}
