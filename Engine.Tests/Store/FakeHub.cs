using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Engine.Tests.Store;

/// <summary>A Hugging Face hub on loopback with the two calls `engine pull` makes: the repository tree listing
/// (/api/models/OWNER/REPO/tree/REV, the hub's JSON shape: type, path, size, oid and lfs {oid, size}) and file downloads
/// (/OWNER/REPO/resolve/REV/PATH, with range requests). Faults are switched on per file or repository.</summary>
internal sealed class FakeHub : IDisposable
{
    public sealed class RepoFile(string path, byte[] content, bool lfs = true)
    {
        public string Path { get; } = path;
        public byte[] Content { get; } = content;
        public bool Lfs { get; } = lfs;
        /// <summary>The hash the listing publishes; the content's own unless a test corrupts it.</summary>
        public string? PublishedHash { get; set; }
        /// <summary>The first download sends this many bytes, then drops the connection.</summary>
        public long? DropAfter { get; set; }
    }

    readonly HttpListener _listener = new();
    readonly Dictionary<string, List<RepoFile>> _repos = new(StringComparer.Ordinal);
    readonly Dictionary<string, (HttpStatusCode Status, string? ErrorCode)> _refusals = new(StringComparer.Ordinal);
    readonly Dictionary<string, string> _tokens = new(StringComparer.Ordinal);
    public ConcurrentQueue<(string Path, string? Range)> Requests { get; } = new();
    /// <summary>The credentials each request carried: its Authorization and Cookie headers.</summary>
    public ConcurrentQueue<(string Path, string? Authorization, string? Cookie)> Credentials { get; } = new();
    public string Endpoint { get; }

    public FakeHub()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0)) { probe.Start(); port = ((IPEndPoint)probe.LocalEndpoint).Port; }
        Endpoint = $"http://127.0.0.1:{port}";
        _listener.Prefixes.Add(Endpoint + "/");
        _listener.Start();
        _ = Task.Run(Serve);
    }

    public void Add(string repository, params RepoFile[] files) => _repos[repository] = [.. files];

    public void Refuse(string repository, HttpStatusCode status, string? errorCode) => _refusals[repository] = (status, errorCode);

    /// <summary>A private repository: every request for it without "Authorization: Bearer TOKEN" gets 401.</summary>
    public void RequireToken(string repository, string token) => _tokens[repository] = token;

    bool Authorized(HttpListenerContext context, string repository) =>
        !_tokens.TryGetValue(repository, out var token) || context.Request.Headers["Authorization"] == "Bearer " + token;

    async Task Serve()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception) { return; }
            _ = Task.Run(() =>
            {
                try { Handle(context); }
                catch (Exception) { try { context.Response.Abort(); } catch (Exception) { } }
            });
        }
    }

    void Handle(HttpListenerContext context)
    {
        var path = context.Request.Url!.AbsolutePath;
        Requests.Enqueue((path, context.Request.Headers["Range"]));
        Credentials.Enqueue((path, context.Request.Headers["Authorization"], context.Request.Headers["Cookie"]));
        var response = context.Response;
        var segments = path.Trim('/').Split('/').Select(Uri.UnescapeDataString).ToArray();
        if (segments is ["api", "v1", "models", var owner, var repo, "repo", ..])
        {
            ServeModelScope(context, owner + "/" + repo, segments.Length == 7 && segments[6] == "files");
            return;
        }
        bool listing = segments is ["api", "models", _, _, "tree", ..];
        string repository = listing ? segments[2] + "/" + segments[3] : segments.Length >= 2 ? segments[0] + "/" + segments[1] : "";
        bool authorized = Authorized(context, repository);
        if (!authorized || _refusals.ContainsKey(repository) || !_repos.TryGetValue(repository, out var files))
        {
            var (status, code) = !authorized ? (HttpStatusCode.Unauthorized, null)
                : _refusals.TryGetValue(repository, out var refusal) ? refusal : (HttpStatusCode.NotFound, "RepoNotFound");
            response.StatusCode = (int)status;
            if (code is not null) response.Headers["X-Error-Code"] = code;
            response.Close();
            return;
        }
        if (listing)
        {
            var array = new JsonArray();
            foreach (var f in files)
            {
                var entry = new JsonObject { ["type"] = "file", ["oid"] = GitBlobId(f.Content), ["size"] = f.Content.Length, ["path"] = f.Path };
                if (f.Lfs)
                {
                    entry["oid"] = System.Convert.ToHexStringLower(SHA1.HashData(f.Content));
                    entry["size"] = f.Content.Length;
                    entry["lfs"] = new JsonObject { ["oid"] = f.PublishedHash ?? System.Convert.ToHexStringLower(SHA256.HashData(f.Content)), ["size"] = f.Content.Length, ["pointerSize"] = 134 };
                }
                else if (f.PublishedHash is not null) entry["oid"] = f.PublishedHash;
                array.Add(entry);
            }
            Write(response, 200, Encoding.UTF8.GetBytes(array.ToJsonString()), 0, null);
            return;
        }
        // /OWNER/REPO/resolve/REV/PATH...
        var filePath = string.Join('/', segments.Skip(4));
        var file = segments.Length > 4 && segments[2] == "resolve" ? files.FirstOrDefault(f => f.Path == filePath) : null;
        if (file is null)
        {
            response.StatusCode = 404;
            response.Headers["X-Error-Code"] = "EntryNotFound";
            response.Close();
            return;
        }
        long from = 0;
        long? to = null;
        var range = context.Request.Headers["Range"];
        if (range is not null && range.StartsWith("bytes=") && range.EndsWith('-')) from = long.Parse(range[6..^1]);
        else if (range is not null && range.StartsWith("bytes=") && range.Split('-') is [var first, var last])
        {
            // "bytes=A-B", B inclusive, as the hub's CDN answers a bounded range.
            from = long.Parse(first[6..]);
            to = Math.Min(long.Parse(last), file.Content.Length - 1);
        }
        long? drop = file.DropAfter;
        file.DropAfter = null;
        if (to is long end)
        {
            response.StatusCode = 206;
            response.Headers["Content-Range"] = $"bytes {from}-{end}/{file.Content.Length}";
            response.ContentLength64 = end + 1 - from;
            response.OutputStream.Write(file.Content, (int)from, (int)(end + 1 - from));
            Interlocked.Add(ref _servedBytes, end + 1 - from);
            response.Close();
            return;
        }
        Interlocked.Add(ref _servedBytes, file.Content.Length - from);
        Write(response, range is null ? 200 : 206, file.Content, from, drop);
    }

    long _servedBytes;

    /// <summary>Bytes of file content sent so far (what a whole answer would send, for an unbounded one).</summary>
    public long ServedBytes => Interlocked.Read(ref _servedBytes);

    /// <summary>ModelScope's two calls: /api/v1/models/OWNER/REPO/repo/files?Revision=R&amp;Recursive=true and
    /// /api/v1/models/OWNER/REPO/repo?Revision=R&amp;FilePath=PATH.</summary>
    void ServeModelScope(HttpListenerContext context, string repository, bool listing)
    {
        var response = context.Response;
        if (!Authorized(context, repository))
        {
            response.StatusCode = 401;
            response.Close();
            return;
        }
        if (!_repos.TryGetValue(repository, out var files) || !repository.StartsWith("ms-"))
        {
            response.StatusCode = 404;
            response.Close();
            return;
        }
        if (listing)
        {
            var array = new JsonArray();
            foreach (var f in files)
                array.Add(new JsonObject
                {
                    ["Name"] = f.Path.Split('/')[^1], ["Path"] = f.Path, ["Type"] = "blob", ["Size"] = f.Content.Length,
                    ["Sha256"] = f.PublishedHash ?? System.Convert.ToHexStringLower(SHA256.HashData(f.Content)), ["Revision"] = "abc",
                });
            array.Add(new JsonObject { ["Name"] = "sub", ["Path"] = "sub", ["Type"] = "tree", ["Size"] = 0 });
            var body = new JsonObject { ["Code"] = 200, ["Data"] = new JsonObject { ["Files"] = array }, ["Success"] = true };
            Write(response, 200, Encoding.UTF8.GetBytes(body.ToJsonString()), 0, null);
            return;
        }
        var file = files.FirstOrDefault(f => f.Path == context.Request.QueryString["FilePath"]);
        if (file is null || context.Request.QueryString["Revision"] != "master")
        {
            response.StatusCode = 404;
            response.Close();
            return;
        }
        Write(response, 200, file.Content, 0, null);
    }

    static void Write(HttpListenerResponse response, int status, byte[] content, long from, long? dropAfter)
    {
        response.StatusCode = status;
        if (status == 206) response.Headers["Content-Range"] = $"bytes {from}-{content.Length - 1}/{content.Length}";
        response.ContentLength64 = content.Length - from;
        if (dropAfter is { } n)
        {
            response.OutputStream.Write(content, (int)from, (int)(n - from));
            response.OutputStream.Flush();
            Thread.Sleep(100);
            response.Abort();
            return;
        }
        response.OutputStream.Write(content, (int)from, (int)(content.Length - from));
        response.Close();
    }

    /// <summary>What git calls a blob's id: SHA-1 of "blob SIZE\0" and the content.</summary>
    public static string GitBlobId(byte[] content) =>
        System.Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {content.Length}\0"), .. content]));

    public void Dispose() => _listener.Close();
}
