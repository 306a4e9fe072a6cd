using System.Net;
using System.Text;
using Engine.Tests.Support;

namespace Engine.Tests.Store;

/// <summary>`engine pull`, `list` and `rm` against a fake hub on loopback, each test with its own empty store.</summary>
public sealed class PullCliTests : IDisposable
{
    readonly FakeHub _hub = new();
    readonly string _store = Path.Combine(Path.GetTempPath(), "engine-store-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        _hub.Dispose();
        if (Directory.Exists(_store)) Directory.Delete(_store, recursive: true);
    }

    CliRunner.Result Engine(params string[] args) => CliRunner.RunWithEnvironment(new Dictionary<string, string?>
    {
        ["ENGINE_MODELS"] = _store, ["HF_ENDPOINT"] = _hub.Endpoint, ["HF_TOKEN"] = null,
    }, null, args);

    static byte[] Bytes(int size, int seed)
    {
        var data = new byte[size];
        new Random(seed).NextBytes(data);
        return data;
    }

    string[] StoreFiles() => Directory.Exists(_store) ? Directory.GetFiles(_store, "*", SearchOption.AllDirectories) : [];

    [Fact]
    public void Pulls_the_gguf_matching_the_quant_then_lists_and_removes_it()
    {
        var q8 = Bytes(300_000, 1);
        _hub.Add("acme/tiny-GGUF",
            new FakeHub.RepoFile("README.md", Encoding.UTF8.GetBytes("hello\n"), lfs: false),
            new FakeHub.RepoFile("tiny-Q4_K_M.gguf", Bytes(200_000, 2)),
            new FakeHub.RepoFile("tiny-Q8_0.gguf", q8),
            new FakeHub.RepoFile("tiny-IQ4_XS.gguf", Bytes(100, 3)));

        var pull = Engine("pull", "acme/tiny-GGUF:q8_0");
        pull.ExitCode.Should().Be(0, pull.Stderr);
        var file = Path.Combine(_store, "huggingface", "acme", "tiny-GGUF", "Q8_0", "tiny-Q8_0.gguf");
        pull.Stdout.Trim().Should().Be(file);
        File.ReadAllBytes(file).Should().Equal(q8);
        StoreFiles().Select(Path.GetFileName).Should().BeEquivalentTo(["tiny-Q8_0.gguf", "manifest.json"]);
        pull.Stderr.Should().Contain("tiny-Q8_0.gguf").And.Contain("/s");

        var list = Engine("list");
        list.ExitCode.Should().Be(0, list.Stderr);
        list.Stdout.Should().Contain("acme/tiny-GGUF:q8_0").And.Contain("293.0 KiB");

        var rm = Engine("rm", "acme/tiny-GGUF:Q8_0");
        rm.ExitCode.Should().Be(0, rm.Stderr);
        StoreFiles().Should().BeEmpty();
        Engine("list").Stdout.Should().BeEmpty();
        Engine("rm", "acme/tiny-GGUF:Q8_0").ExitCode.Should().Be(1);
    }

    [Fact]
    public void A_connection_dropped_mid_file_is_resumed_with_a_range_request()
    {
        var content = Bytes(3_000_000, 4);
        _hub.Add("acme/big-GGUF", new FakeHub.RepoFile("big.Q4_0.gguf", content) { DropAfter = 1_000_000 });

        var pull = Engine("pull", "acme/big-GGUF:Q4_0");
        pull.ExitCode.Should().Be(0, pull.Stderr);
        pull.Stderr.Should().Contain("resuming");
        File.ReadAllBytes(Path.Combine(_store, "huggingface", "acme", "big-GGUF", "Q4_0", "big.Q4_0.gguf")).Should().Equal(content);
        var ranges = _hub.Requests.Where(r => r.Path.Contains("/resolve/")).Select(r => r.Range).ToList();
        ranges.Should().HaveCount(2);
        ranges[0].Should().BeNull();
        ranges[1].Should().MatchRegex("^bytes=[1-9][0-9]*-$", "the second request asks only for what the first did not deliver");
        StoreFiles().Should().NotContain(f => f.EndsWith(".part"));
    }

    [Fact]
    public void A_file_whose_hash_differs_is_rejected_and_nothing_stays_in_the_store()
    {
        _hub.Add("acme/bad-GGUF", new FakeHub.RepoFile("bad-Q4_K_M.gguf", Bytes(50_000, 5)) { PublishedHash = new string('0', 64) });

        var pull = Engine("pull", "acme/bad-GGUF");
        pull.ExitCode.Should().Be(1);
        pull.Stderr.Should().Contain("SHA-256").And.Contain(new string('0', 64));
        StoreFiles().Should().BeEmpty();
        Engine("list").Stdout.Should().BeEmpty();
    }

    [Fact]
    public void A_small_file_is_checked_against_its_git_blob_id()
    {
        // git hash-object of "hello\n": anchors the fake hub's blob ids to git's.
        FakeHub.GitBlobId(Encoding.UTF8.GetBytes("hello\n")).Should().Be("ce013625030ba8dba906f756967f9e9ca394464a");
        var weights = Bytes(10_000, 6);
        _hub.Add("acme/plain", new FakeHub.RepoFile("config.json", Encoding.UTF8.GetBytes("{\"a\": 1}\n"), lfs: false),
            new FakeHub.RepoFile("model.safetensors", weights), new FakeHub.RepoFile("original/consolidated.pth", Bytes(10, 7)));
        var pull = Engine("pull", "acme/plain");
        pull.ExitCode.Should().Be(0, pull.Stderr);
        var folder = Path.Combine(_store, "huggingface", "acme", "plain", "latest");
        pull.Stdout.Trim().Should().Be(folder);
        File.ReadAllBytes(Path.Combine(folder, "model.safetensors")).Should().Equal(weights);
        File.Exists(Path.Combine(folder, "consolidated.pth")).Should().BeFalse();

        _hub.Add("acme/plain-bad", new FakeHub.RepoFile("config.json", Encoding.UTF8.GetBytes("{}\n"), lfs: false) { PublishedHash = new string('1', 40) },
            new FakeHub.RepoFile("model.safetensors", weights));
        var bad = Engine("pull", "acme/plain-bad");
        bad.ExitCode.Should().Be(1);
        bad.Stderr.Should().Contain("git blob id");
        Directory.Exists(Path.Combine(_store, "huggingface", "acme", "plain-bad")).Should().BeFalse();
    }

    [Fact]
    public void Unauthorized_and_missing_repositories_get_clear_messages()
    {
        _hub.Refuse("acme/gated", HttpStatusCode.Unauthorized, "GatedRepo");
        var gated = Engine("pull", "acme/gated:Q4_0");
        gated.ExitCode.Should().Be(1);
        gated.Stderr.Should().Contain("acme/gated").And.Contain("HF_TOKEN").And.Contain("401");

        var missing = Engine("pull", "acme/nothing-here:Q4_0");
        missing.ExitCode.Should().Be(1);
        missing.Stderr.Should().Contain("acme/nothing-here does not exist").And.Contain("404");

        string closed;
        using (var gone = new FakeHub()) closed = gone.Endpoint;
        var unreachable = CliRunner.RunWithEnvironment(new Dictionary<string, string?> { ["ENGINE_MODELS"] = _store, ["HF_ENDPOINT"] = closed },
            null, "pull", "acme/gated:Q4_0");
        unreachable.ExitCode.Should().Be(1);
        unreachable.Stderr.Should().StartWith("engine: cannot reach " + closed);

        _hub.Refuse("acme/tagged", HttpStatusCode.NotFound, "RevisionNotFound");
        var revision = Engine("pull", "acme/tagged", "--revision", "v9");
        revision.ExitCode.Should().Be(1);
        revision.Stderr.Should().Contain("revision v9 does not exist");

        _hub.Add("acme/other-GGUF", new FakeHub.RepoFile("other-Q8_0.gguf", Bytes(10, 8)));
        var quant = Engine("pull", "acme/other-GGUF:Q2_K");
        quant.ExitCode.Should().Be(1);
        quant.Stderr.Should().Contain("no GGUF matching 'Q2_K'").And.Contain("other-Q8_0.gguf");
        StoreFiles().Should().BeEmpty();
    }

    [Fact]
    public void Every_part_of_a_split_gguf_is_pulled()
    {
        var parts = Enumerable.Range(1, 3).Select(i => new FakeHub.RepoFile($"Q4_K_M/m-Q4_K_M-{i:00000}-of-00003.gguf", Bytes(40_000 + i, 10 + i))).ToArray();
        _hub.Add("acme/split-GGUF", [new FakeHub.RepoFile("m-Q8_0.gguf", Bytes(10, 9)), .. parts]);

        var pull = Engine("pull", "acme/split-GGUF:Q4_K_M");
        pull.ExitCode.Should().Be(0, pull.Stderr);
        var folder = Path.Combine(_store, "huggingface", "acme", "split-GGUF", "Q4_K_M");
        pull.Stdout.Trim().Should().Be(Path.Combine(folder, "m-Q4_K_M-00001-of-00003.gguf"));
        foreach (var part in parts)
            File.ReadAllBytes(Path.Combine(folder, Path.GetFileName(part.Path))).Should().Equal(part.Content);
        File.Exists(Path.Combine(folder, "m-Q8_0.gguf")).Should().BeFalse();

        // A pull stopped after the first part: that part is kept (checked, not downloaded again), the rest follows.
        _hub.Requests.Clear();
        File.Delete(Path.Combine(folder, "manifest.json"));
        File.Delete(Path.Combine(folder, "m-Q4_K_M-00003-of-00003.gguf"));
        File.WriteAllBytes(Path.Combine(folder, "m-Q4_K_M-00002-of-00003.gguf"), Bytes(40_002, 99));
        var again = Engine("pull", "acme/split-GGUF:Q4_K_M");
        again.ExitCode.Should().Be(0, again.Stderr);
        _hub.Requests.Where(r => r.Path.Contains("/resolve/")).Select(r => Path.GetFileName(r.Path))
            .Should().BeEquivalentTo(["m-Q4_K_M-00002-of-00003.gguf", "m-Q4_K_M-00003-of-00003.gguf"]);
        foreach (var part in parts)
            File.ReadAllBytes(Path.Combine(folder, Path.GetFileName(part.Path))).Should().Equal(part.Content);

        _hub.Add("acme/broken-split-GGUF", parts[0], parts[2]);
        var broken = Engine("pull", "acme/broken-split-GGUF:Q4_K_M");
        broken.ExitCode.Should().Be(1);
        broken.Stderr.Should().Contain("part 2 of 3");
    }

    [Theory]
    [InlineData("../escape:Q4_0")]
    [InlineData("acme/..:Q4_0")]
    [InlineData("acme/../../x")]
    [InlineData("/etc/passwd")]
    [InlineData("acme/repo/extra")]
    [InlineData("acme/repo:../../x")]
    [InlineData("acme\\..\\x/y")]
    [InlineData("acme/repo:Q4/../..")]
    public void Names_that_would_leave_the_store_are_refused(string name)
    {
        foreach (var command in new[] { "pull", "rm" })
        {
            var r = Engine(command, name);
            r.ExitCode.Should().Be(1, r.Stderr);
            r.Stderr.Should().Contain("bad model name");
        }
        _hub.Requests.Should().BeEmpty();
        Directory.Exists(_store).Should().BeFalse();
    }

    [Fact]
    public void A_file_name_from_the_hub_that_would_leave_the_store_is_refused()
    {
        _hub.Add("acme/evil-GGUF", new FakeHub.RepoFile("../../../evil-Q4_0.gguf", Bytes(10, 20)));
        var r = Engine("pull", "acme/evil-GGUF:Q4_0");
        r.ExitCode.Should().Be(1);
        r.Stderr.Should().Contain("not a plain file name");
        File.Exists(Path.Combine(Path.GetDirectoryName(_store)!, "evil-Q4_0.gguf")).Should().BeFalse();
        _hub.Requests.Should().NotContain(q => q.Path.Contains("/resolve/"));
        Directory.Exists(_store).Should().BeFalse();
    }

    [Fact]
    public void A_part_file_left_by_an_earlier_pull_is_resumed()
    {
        var content = Bytes(200_000, 30);
        _hub.Add("acme/resume-GGUF", new FakeHub.RepoFile("r-Q8_0.gguf", content));
        var folder = Directory.CreateDirectory(Path.Combine(_store, "huggingface", "acme", "resume-GGUF", "Q8_0")).FullName;
        File.WriteAllBytes(Path.Combine(folder, "r-Q8_0.gguf.part"), content[..123_456]);

        var pull = Engine("pull", "acme/resume-GGUF:Q8_0");
        pull.ExitCode.Should().Be(0, pull.Stderr);
        _hub.Requests.Where(r => r.Path.Contains("/resolve/")).Select(r => r.Range).Should().Equal("bytes=123456-");
        File.ReadAllBytes(Path.Combine(folder, "r-Q8_0.gguf")).Should().Equal(content);
    }

    [Fact]
    public void Run_accepts_a_pulled_name()
    {
        var stories = Path.Combine(TestPaths.RepoRoot, "models", "stories260K.gguf");
        _hub.Add("acme/stories-GGUF", new FakeHub.RepoFile("stories260K-F32.gguf", File.ReadAllBytes(stories)));
        Engine("pull", "acme/stories-GGUF:F32").ExitCode.Should().Be(0);

        var pulled = Engine("run", "Once upon a time", "--model", "acme/stories-GGUF:F32", "-n", "8", "--temperature", "0");
        var direct = Engine("run", "Once upon a time", "--model", stories, "-n", "8", "--temperature", "0");
        pulled.ExitCode.Should().Be(0, pulled.Stderr);
        pulled.Stdout.Should().NotBeEmpty().And.Be(direct.Stdout);

        var absent = Engine("run", "Once", "--model", "acme/stories-GGUF:Q2_K", "-n", "1");
        absent.ExitCode.Should().Be(2);
        absent.Stderr.Should().Contain("engine pull acme/stories-GGUF:Q2_K");
    }

    /// <summary>A model pulled as a split GGUF (stories260K in three parts, as llama-gguf-split writes them) runs and is
    /// estimated by its name as the whole file is.</summary>
    [Fact]
    public void Run_and_estimate_accept_a_pulled_split_name()
    {
        var stories = Path.Combine(TestPaths.RepoRoot, "models", "stories260K.gguf");
        List<byte[]> parts;
        using (var source = global::Engine.Formats.Gguf.GgufFile.Open(stories)) parts = GgufSplitter.Split(source, 20);
        _hub.Add("acme/split-stories-GGUF", [.. parts.Select((bytes, i) => new FakeHub.RepoFile(GgufSplitter.PartName("stories260K-F32", i, parts.Count), bytes))]);
        var pull = Engine("pull", "acme/split-stories-GGUF:F32");
        pull.ExitCode.Should().Be(0, pull.Stderr);
        pull.Stdout.Trim().Should().EndWith("stories260K-F32-00001-of-00003.gguf");

        var pulled = Engine("run", "Once upon a time", "--model", "acme/split-stories-GGUF:F32", "-n", "8", "--temperature", "0");
        var direct = Engine("run", "Once upon a time", "--model", stories, "-n", "8", "--temperature", "0");
        pulled.ExitCode.Should().Be(0, pulled.Stderr);
        pulled.Stdout.Should().NotBeEmpty().And.Be(direct.Stdout);

        string[] sizing = ["--ctx", "256", "--parallel", "1", "--bandwidth", "10", "--json"];
        var byName = Engine(["estimate", "--model", "acme/split-stories-GGUF:F32", .. sizing]);
        var whole = Engine(["estimate", "--model", stories, .. sizing]);
        byName.ExitCode.Should().Be(0, byName.Stderr);
        using var a = System.Text.Json.JsonDocument.Parse(byName.Stdout);
        using var b = System.Text.Json.JsonDocument.Parse(whole.Stdout);
        a.RootElement.GetProperty("weights_bytes").GetInt64().Should().Be(b.RootElement.GetProperty("weights_bytes").GetInt64());
    }

    [Fact]
    public void A_modelscope_name_pulls_from_modelscope_into_its_own_folder()
    {
        var content = Bytes(70_000, 40);
        _hub.Add("ms-acme/tiny-GGUF", new FakeHub.RepoFile("tiny-Q4_0.gguf", content));
        var r = CliRunner.RunWithEnvironment(new Dictionary<string, string?>
        {
            ["ENGINE_MODELS"] = _store, ["MODELSCOPE_ENDPOINT"] = _hub.Endpoint, ["HF_ENDPOINT"] = "http://127.0.0.1:9",
        }, null, "pull", "modelscope:ms-acme/tiny-GGUF:Q4_0");
        r.ExitCode.Should().Be(0, r.Stderr);
        var file = Path.Combine(_store, "modelscope", "ms-acme", "tiny-GGUF", "Q4_0", "tiny-Q4_0.gguf");
        r.Stdout.Trim().Should().Be(file);
        File.ReadAllBytes(file).Should().Equal(content);
        Engine("list").Stdout.Should().Contain("modelscope:ms-acme/tiny-GGUF:Q4_0");
        Engine("rm", "modelscope:ms-acme/tiny-GGUF:Q4_0").ExitCode.Should().Be(0);
        StoreFiles().Should().BeEmpty();
    }

    [Fact]
    public void Tokens_go_to_their_own_hub_only_and_open_private_repositories()
    {
        var content = Bytes(50_000, 50);
        _hub.Add("ms-acme/private-GGUF", new FakeHub.RepoFile("p-Q4_0.gguf", content));
        _hub.RequireToken("ms-acme/private-GGUF", "ms-secret");
        Dictionary<string, string?> Environment(string? modelScopeToken) => new()
        {
            ["ENGINE_MODELS"] = _store, ["MODELSCOPE_ENDPOINT"] = _hub.Endpoint, ["HF_ENDPOINT"] = "http://127.0.0.1:9",
            ["HF_TOKEN"] = "hf-secret", ["MODELSCOPE_API_TOKEN"] = modelScopeToken,
        };

        var refused = CliRunner.RunWithEnvironment(Environment(null), null, "pull", "modelscope:ms-acme/private-GGUF:Q4_0");
        refused.ExitCode.Should().NotBe(0);
        refused.Stderr.Should().Contain("ModelScope refused access").And.Contain("set MODELSCOPE_API_TOKEN");
        _hub.Credentials.Should().OnlyContain(c => c.Authorization == null, "HF_TOKEN is never sent to ModelScope");

        var pulled = CliRunner.RunWithEnvironment(Environment("ms-secret"), null, "pull", "modelscope:ms-acme/private-GGUF:Q4_0");
        pulled.ExitCode.Should().Be(0, pulled.Stderr);
        File.ReadAllBytes(pulled.Stdout.Trim()).Should().Equal(content);
        _hub.Credentials.Where(c => c.Authorization != null).Should().NotBeEmpty()
            .And.OnlyContain(c => c.Authorization == "Bearer ms-secret" && c.Cookie == "m_session_id=ms-secret");

        _hub.Add("acme/private-GGUF", new FakeHub.RepoFile("h-Q4_0.gguf", content));
        _hub.RequireToken("acme/private-GGUF", "hf-secret");
        var hf = CliRunner.RunWithEnvironment(new Dictionary<string, string?>
        {
            ["ENGINE_MODELS"] = _store, ["HF_ENDPOINT"] = _hub.Endpoint, ["HF_TOKEN"] = "hf-secret", ["MODELSCOPE_API_TOKEN"] = "ms-secret",
        }, null, "pull", "acme/private-GGUF:Q4_0");
        hf.ExitCode.Should().Be(0, hf.Stderr);
        _hub.Credentials.Where(c => c.Path.StartsWith("/api/models/") || c.Path.StartsWith("/acme/"))
            .Should().OnlyContain(c => c.Authorization == "Bearer hf-secret" && c.Cookie == null, "the ModelScope token never goes to Hugging Face");
    }

    [Fact]
    public void A_second_pull_of_a_file_being_downloaded_is_refused_and_leaves_the_first_ones_part_file_alone()
    {
        var content = Bytes(80_000, 60);
        _hub.Add("acme/locked-GGUF", new FakeHub.RepoFile("l-Q8_0.gguf", content));
        var folder = Directory.CreateDirectory(Path.Combine(_store, "huggingface", "acme", "locked-GGUF", "Q8_0")).FullName;
        var target = Path.Combine(folder, "l-Q8_0.gguf");
        File.WriteAllBytes(target + ".part", content[..1000]);

        using (new FileStream(target + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose))
        {
            var second = Engine("pull", "acme/locked-GGUF:Q8_0");
            second.ExitCode.Should().NotBe(0);
            second.Stderr.Should().Contain("another engine pull is downloading l-Q8_0.gguf");
            File.ReadAllBytes(target + ".part").Should().Equal(content[..1000]);
            File.Exists(target).Should().BeFalse();
        }

        var after = Engine("pull", "acme/locked-GGUF:Q8_0");
        after.ExitCode.Should().Be(0, after.Stderr);
        File.ReadAllBytes(target).Should().Equal(content);
        StoreFiles().Should().NotContain(f => f.EndsWith(".lock") || f.EndsWith(".part"));
    }
}
