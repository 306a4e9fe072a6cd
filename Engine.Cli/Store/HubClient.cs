using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Engine.Cli.Store;

/// <summary>One file in a hub repository's listing: its path, size and the hash the hub publishes (the SHA-256 of an LFS
/// file, else the git blob id of the small file).</summary>
internal sealed record HubFile(string Path, long Size, string? Sha256, string? GitBlobId);

/// <summary>Reads a Hugging Face (or ModelScope) repository's file list and downloads files into the store: to a .part file first,
/// resumed with a range request when the connection drops (or on the next pull), renamed into place only after its size
/// and hash match what the hub published.</summary>
internal sealed class HubClient(HttpClient http, string endpoint, TextWriter log, bool modelScope = false)
{
    const int Attempts = 5;
    static readonly TimeSpan StallTimeout = TimeSpan.FromSeconds(60);
    static readonly Regex Revision = new("^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$", RegexOptions.CultureInvariant);
    static readonly Regex NextLink = new("<([^>]+)>\\s*;\\s*rel=\"next\"", RegexOptions.CultureInvariant);

    public string Endpoint { get; } = endpoint.TrimEnd('/');

    /// <summary>The revision a pull without --revision takes: the hub's default branch.</summary>
    public string DefaultRevision => modelScope ? "master" : "main";

    /// <summary>Hugging Face: HF_ENDPOINT (default https://huggingface.co) and HF_TOKEN as a bearer token when set.
    /// ModelScope: MODELSCOPE_ENDPOINT (default https://modelscope.cn) and MODELSCOPE_API_TOKEN (its SDK token), sent as a
    /// bearer token and as the m_session_id cookie that ModelScope's download endpoint reads. Neither token is ever sent to
    /// the other hub.</summary>
    public static HubClient FromEnvironment(TextWriter log, bool modelScope)
    {
        var variable = modelScope ? "MODELSCOPE_ENDPOINT" : "HF_ENDPOINT";
        var endpoint = Environment.GetEnvironmentVariable(variable);
        if (string.IsNullOrEmpty(endpoint)) endpoint = modelScope ? "https://modelscope.cn" : "https://huggingface.co";
        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || (uri.Scheme != "https" && uri.Scheme != "http"))
            throw new StoreException($"{variable} '{endpoint}' is not an http(s) address");
        var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("engine", "1"));
        var token = Environment.GetEnvironmentVariable(TokenVariable(modelScope));
        if (!string.IsNullOrEmpty(token))
        {
            if (token.Any(c => c is < ' ' or > '~' or ';' or ','))
                throw new StoreException($"{TokenVariable(modelScope)} holds characters a token cannot have (it is sent as an HTTP header): copy it again");
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            if (modelScope) http.DefaultRequestHeaders.Add("Cookie", "m_session_id=" + token);
        }
        return new HubClient(http, endpoint, log, modelScope);
    }

    static string TokenVariable(bool modelScope) => modelScope ? "MODELSCOPE_API_TOKEN" : "HF_TOKEN";

    public static void CheckRevision(string revision)
    {
        if (!Revision.IsMatch(revision) || revision.Contains(".."))
            throw new StoreException($"bad revision '{revision}': a branch, tag or commit (letters, digits, '.', '_', '-', '/')");
    }

    /// <summary>Every file of the repository at <paramref name="revision"/>, following the listing's pages.</summary>
    public List<HubFile> ListFiles(string repository, string revision)
    {
        if (modelScope) return ListModelScopeFiles(repository, revision);
        var files = new List<HubFile>();
        string? url = $"{Endpoint}/api/models/{repository}/tree/{Uri.EscapeDataString(revision)}?recursive=true";
        for (int page = 0; url is not null; page++)
        {
            if (page == 1000) throw new StoreException($"the listing of {repository} did not end after {page} pages");
            using var response = Send(HttpMethod.Get, url, null);
            Check(response, repository, revision, null);
            using var document = JsonDocument.Parse(response.Content.ReadAsStream());
            if (document.RootElement.ValueKind != JsonValueKind.Array)
                throw new StoreException($"{url} did not answer a file list (a JSON array)");
            foreach (var entry in document.RootElement.EnumerateArray()) files.AddIfFile(entry, url);
            url = response.Headers.TryGetValues("Link", out var links)
                ? links.Select(l => NextLink.Match(l)).FirstOrDefault(m => m.Success)?.Groups[1].Value
                : null;
        }
        return files;
    }

    /// <summary>ModelScope's listing: {"Code": 200, "Data": {"Files": [{"Type": "blob", "Path", "Size", "Sha256"}]}}, one
    /// page with Recursive=true.</summary>
    List<HubFile> ListModelScopeFiles(string repository, string revision)
    {
        var url = $"{Endpoint}/api/v1/models/{repository}/repo/files?Revision={Uri.EscapeDataString(revision)}&Recursive=true";
        using var response = Send(HttpMethod.Get, url, null);
        Check(response, repository, revision, null);
        using var document = JsonDocument.Parse(response.Content.ReadAsStream());
        if (!document.RootElement.TryGetProperty("Data", out var data) || data.ValueKind != JsonValueKind.Object
            || !data.TryGetProperty("Files", out var list) || list.ValueKind != JsonValueKind.Array)
            throw new StoreException($"{url} did not answer a file list (Data.Files): {Truncate(document.RootElement.GetRawText())}");
        var files = new List<HubFile>();
        foreach (var entry in list.EnumerateArray())
        {
            if (!entry.TryGetProperty("Type", out var type) || type.GetString() != "blob") continue;
            if (!entry.TryGetProperty("Path", out var path) || path.ValueKind != JsonValueKind.String
                || !entry.TryGetProperty("Size", out var size) || !size.TryGetInt64(out var bytes) || bytes < 0)
                throw new StoreException($"{url} listed a file without a path or size: {Truncate(entry.GetRawText())}");
            var sha256 = entry.TryGetProperty("Sha256", out var sha) && sha.ValueKind == JsonValueKind.String && sha.GetString()!.Length == 64 ? sha.GetString() : null;
            files.Add(new HubFile(path.GetString()!, bytes, sha256, null));
        }
        return files;
    }

    static string Truncate(string text) => text.Length <= 200 ? text : text[..200] + "...";

    string DownloadUrl(string repository, string revision, string path) => modelScope
        ? $"{Endpoint}/api/v1/models/{repository}/repo?Revision={Uri.EscapeDataString(revision)}&FilePath={Uri.EscapeDataString(path)}"
        : $"{Endpoint}/{repository}/resolve/{Uri.EscapeDataString(revision)}/{string.Join('/', path.Split('/').Select(Uri.EscapeDataString))}";

    /// <summary>Downloads <paramref name="file"/> to <paramref name="target"/> through <paramref name="target"/>.part,
    /// resuming what an earlier try left there. A file whose hash does not match is deleted and reported.</summary>
    public void Download(string repository, string revision, HubFile file, string target)
    {
        var part = target + ".part";
        using var downloadLock = TakeDownloadLock(target, file.Path);
        var url = DownloadUrl(repository, revision, file.Path);
        using var hash = new FileHash(file);
        long have = File.Exists(part) ? new FileInfo(part).Length : 0;
        if (have > file.Size) { File.Delete(part); have = 0; }
        if (have > 0) hash.AppendExisting(part, have);
        var progress = new DownloadProgress(log, System.IO.Path.GetFileName(target), file.Size, have);
        for (int attempt = 1; have < file.Size || !File.Exists(part); attempt++)
        {
            try
            {
                have = Fetch(url, repository, revision, file, part, have, hash, progress);
            }
            catch (Exception e) when ((e is IOException or HttpRequestException or OperationCanceledException) && attempt < Attempts)
            {
                have = File.Exists(part) ? new FileInfo(part).Length : 0;
                log.WriteLine($"engine: {System.IO.Path.GetFileName(target)}: the connection broke at {DownloadProgress.Bytes(have)} ({e.Message}); resuming");
                Thread.Sleep(TimeSpan.FromMilliseconds(250 * attempt));
                // The hash has seen exactly the bytes written before the failure, but re-read them to be sure of it.
                hash.Reset();
                if (have > 0) hash.AppendExisting(part, have);
            }
            catch (Exception e) when (e is IOException or HttpRequestException or OperationCanceledException)
            {
                throw new StoreException($"downloading {file.Path} from {repository} failed {Attempts} times, last: {e.Message}; " +
                                         $"run the same pull again to resume from the {DownloadProgress.Bytes(have)} kept in {part}");
            }
        }
        progress.Finish();
        var (expected, actual, kind) = hash.Verdict();
        if (!string.Equals(expected, actual, StringComparison.OrdinalIgnoreCase))
        {
            File.Delete(part);
            throw new HashMismatchException($"{file.Path} from {repository} is corrupt: its {kind} is {actual}, the hub published {expected}; deleted it");
        }
        File.Move(part, target, overwrite: true);
    }

    /// <summary>An exclusive lock beside the part file, so two pulls of the same file never append to one part file. The
    /// operating system drops it when the process ends, however it ends, so a crashed pull never blocks the next one.</summary>
    static FileStream TakeDownloadLock(string target, string hubPath)
    {
        var path = target + ".lock";
        try
        {
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (IOException e) when (File.Exists(path))
        {
            throw new StoreException($"another engine pull is downloading {hubPath} into the store right now ({e.Message}); " +
                                     "wait for it to finish, then run this pull again (it will find the file there)");
        }
    }

    /// <summary>Bytes [offset, offset + length) of a file on the hub, by one range request. A server that ignores the
    /// range and sends the whole file is read only up to what was asked, and the rest of the answer dropped.</summary>
    public byte[] ReadRange(string repository, string revision, HubFile file, long offset, int length)
    {
        var url = DownloadUrl(repository, revision, file.Path);
        length = (int)Math.Min(length, Math.Max(0, file.Size - offset));
        if (length == 0) return [];
        using var response = Send(HttpMethod.Get, url, new RangeHeaderValue(offset, offset + length - 1));
        Check(response, repository, revision, file.Path);
        bool whole = response.StatusCode != HttpStatusCode.PartialContent;
        if (!whole && response.Content.Headers.ContentRange?.From is long from && from != offset)
            throw new StoreException($"{url} answered a range starting at {from}, not at {offset}");
        using var body = response.Content.ReadAsStream();
        if (whole) Skip(body, offset, url);
        var bytes = new byte[length];
        int have = 0;
        while (have < length)
        {
            int read;
            using (var stall = new CancellationTokenSource(StallTimeout))
                read = body.ReadAsync(bytes.AsMemory(have), stall.Token).AsTask().GetAwaiter().GetResult();
            if (read == 0) throw new StoreException($"{url} ended after {have} of the {length} bytes asked for at offset {offset}");
            have += read;
        }
        return bytes;
    }

    static void Skip(Stream body, long count, string url)
    {
        var buffer = new byte[1 << 16];
        while (count > 0)
        {
            int read = body.Read(buffer, 0, (int)Math.Min(buffer.Length, count));
            if (read == 0) throw new StoreException($"{url} ended before offset {count}");
            count -= read;
        }
    }

    /// <summary>Whether <paramref name="target"/> already holds <paramref name="file"/> (an earlier pull stopped after
    /// renaming it): same size and hash. A file that differs is left for the download to replace.</summary>
    public static bool AlreadyHave(HubFile file, string target)
    {
        if (!File.Exists(target) || new FileInfo(target).Length != file.Size) return false;
        using var hash = new FileHash(file);
        hash.AppendExisting(target, file.Size);
        var (expected, actual, _) = hash.Verdict();
        return string.Equals(expected, actual, StringComparison.OrdinalIgnoreCase) && (file.Sha256 ?? file.GitBlobId) is not null;
    }

    /// <summary>One request for the rest of the file; returns how many bytes the part file holds afterwards.</summary>
    long Fetch(string url, string repository, string revision, HubFile file, string part, long have, FileHash hash, DownloadProgress progress)
    {
        using var response = Send(HttpMethod.Get, url, have > 0 ? new RangeHeaderValue(have, null) : null);
        Check(response, repository, revision, file.Path);
        if (have > 0 && response.StatusCode != HttpStatusCode.PartialContent)
        {
            // The server ignored the range: start over rather than append the whole file again.
            have = 0;
            hash.Reset();
            progress.Restart();
        }
        else if (have > 0 && response.Content.Headers.ContentRange?.From != have)
            throw new StoreException($"{url} answered a range starting at {response.Content.Headers.ContentRange?.From}, not at {have}");
        using var body = response.Content.ReadAsStream();
        using var output = new FileStream(part, have > 0 ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        var buffer = new byte[1 << 20];
        while (true)
        {
            int read;
            using (var stall = new CancellationTokenSource(StallTimeout))
                read = body.ReadAsync(buffer, stall.Token).AsTask().GetAwaiter().GetResult();
            if (read == 0) break;
            if (have + read > file.Size)
                throw new StoreException($"{url} sent more than the {file.Size} bytes the hub listed for {file.Path}");
            output.Write(buffer, 0, read);
            hash.Append(buffer.AsSpan(0, read));
            have += read;
            progress.Report(have);
        }
        output.Flush();
        if (have < file.Size) throw new IOException($"the server closed the connection after {have} of {file.Size} bytes");
        return have;
    }

    HttpResponseMessage Send(HttpMethod method, string url, RangeHeaderValue? range)
    {
        using var request = new HttpRequestMessage(method, url);
        if (range is not null) request.Headers.Range = range;
        return http.Send(request, HttpCompletionOption.ResponseHeadersRead);
    }

    /// <summary>Turns the hub's refusals into messages that say what to do.</summary>
    void Check(HttpResponseMessage response, string repository, string revision, string? path)
    {
        if (response.IsSuccessStatusCode) return;
        var code = response.Headers.TryGetValues("X-Error-Code", out var codes) ? codes.FirstOrDefault() : null;
        var what = path is null ? $"repository {repository} at revision {revision}" : $"{path} in {repository} at revision {revision}";
        var tokenVariable = TokenVariable(modelScope);
        bool hasToken = !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(tokenVariable));
        var hub = modelScope ? "ModelScope" : "the hub";
        throw response.StatusCode switch
        {
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => new StoreException(
                $"{hub} refused access to {what} ({(int)response.StatusCode}{(code is null ? "" : " " + code)}): " +
                (hasToken
                    ? $"{tokenVariable} is set but its account has no access; accept the repository's terms on its page or use a token that can read it"
                    : $"the repository is gated or private (or does not exist); set {tokenVariable} to an access token of an account that can read it")),
            HttpStatusCode.NotFound => new StoreException(code switch
            {
                "RepoNotFound" => $"repository {repository} does not exist on the hub (404)",
                "RevisionNotFound" => $"revision {revision} does not exist in {repository} (404)",
                "EntryNotFound" => $"{what} does not exist (404)",
                _ => $"{what} does not exist (404): check the repository name and --revision",
            }),
            _ => new StoreException($"the hub answered {(int)response.StatusCode} {response.ReasonPhrase} for {what}"),
        };
    }
}

/// <summary>A downloaded file whose hash is not the published one (already deleted).</summary>
internal sealed class HashMismatchException(string message) : Exception(message);

static class HubListing
{
    public static void AddIfFile(this List<HubFile> files, JsonElement entry, string url)
    {
        if (entry.ValueKind != JsonValueKind.Object || !entry.TryGetProperty("type", out var type) || type.GetString() != "file") return;
        if (!entry.TryGetProperty("path", out var path) || path.ValueKind != JsonValueKind.String
            || !entry.TryGetProperty("size", out var size) || !size.TryGetInt64(out var bytes) || bytes < 0)
            throw new StoreException($"{url} listed a file without a path or size: {entry.GetRawText()}");
        string? sha256 = null;
        if (entry.TryGetProperty("lfs", out var lfs) && lfs.ValueKind == JsonValueKind.Object)
        {
            sha256 = lfs.TryGetProperty("oid", out var oid) ? oid.GetString() : null;
            if (lfs.TryGetProperty("size", out var lfsSize) && lfsSize.TryGetInt64(out var l)) bytes = l;
        }
        var blob = entry.TryGetProperty("oid", out var blobId) ? blobId.GetString() : null;
        files.Add(new HubFile(path.GetString()!, bytes, sha256, blob));
    }
}

/// <summary>The hash the hub publishes for a file: SHA-256 of the content for LFS files, else the git blob id (SHA-1 of
/// "blob SIZE\0" and the content).</summary>
sealed class FileHash : IDisposable
{
    readonly HubFile _file;
    IncrementalHash _hash;

    public FileHash(HubFile file)
    {
        _file = file;
        _hash = Create();
    }

    bool Lfs => _file.Sha256 is not null;

    IncrementalHash Create()
    {
        if (Lfs) return IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var sha1 = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
        sha1.AppendData(Encoding.ASCII.GetBytes($"blob {_file.Size.ToString(CultureInfo.InvariantCulture)}\0"));
        return sha1;
    }

    public void Reset()
    {
        _hash.Dispose();
        _hash = Create();
    }

    public void Append(ReadOnlySpan<byte> data) => _hash.AppendData(data);

    public void AppendExisting(string path, long length)
    {
        using var stream = File.OpenRead(path);
        var buffer = new byte[1 << 20];
        for (long left = length; left > 0;)
        {
            int read = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (read == 0) throw new IOException($"{path} ended before {length} bytes");
            _hash.AppendData(buffer, 0, read);
            left -= read;
        }
    }

    /// <summary>(published, computed, name of the hash); a file the hub lists without any hash passes.</summary>
    public (string? Expected, string? Actual, string Kind) Verdict()
    {
        var actual = Convert.ToHexStringLower(_hash.GetHashAndReset());
        return Lfs ? (_file.Sha256, actual, "SHA-256") : (_file.GitBlobId ?? actual, actual, "git blob id");
    }

    public void Dispose() => _hash.Dispose();
}

/// <summary>Bytes, speed and remaining time on stderr: redrawn in place on a terminal, one line per file otherwise.</summary>
sealed class DownloadProgress(TextWriter log, string name, long size, long start)
{
    readonly Stopwatch _clock = Stopwatch.StartNew();
    readonly bool _terminal = ReferenceEquals(log, Console.Error) && !Console.IsErrorRedirected;
    long _start = start, _have = start;
    TimeSpan _drawn = TimeSpan.MinValue;

    public void Restart() { _start = 0; _have = 0; _clock.Restart(); }

    public void Report(long have)
    {
        _have = have;
        if (!_terminal || _clock.Elapsed - _drawn < TimeSpan.FromMilliseconds(200)) return;
        _drawn = _clock.Elapsed;
        log.Write("\r" + Line() + "   ");
    }

    public void Finish()
    {
        if (_terminal) log.Write("\r");
        log.WriteLine(Line());
    }

    string Line()
    {
        double seconds = Math.Max(_clock.Elapsed.TotalSeconds, 1e-3);
        double speed = (_have - _start) / seconds;
        var remaining = speed > 0 ? TimeSpan.FromSeconds((size - _have) / speed) : (TimeSpan?)null;
        var percent = size > 0 ? 100.0 * _have / size : 100;
        return string.Create(CultureInfo.InvariantCulture,
            $"{name}: {Bytes(_have)} / {Bytes(size)} ({percent:0}%)  {Bytes((long)speed)}/s  {(remaining is { } r ? "left " + r.ToString(@"hh\:mm\:ss", CultureInfo.InvariantCulture) : "")}");
    }

    public static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):0.00} GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):0.0} MiB"),
        >= 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:0.0} KiB"),
        _ => bytes.ToString(CultureInfo.InvariantCulture) + " B",
    };
}
