using Engine.Benchmarking;
using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Cli;

public class BenchCliTests
{
    [Fact]
    public void Bench_json_reports_prompt_and_generation_speed_and_the_bandwidth_share()
    {
        var r = CliRunner.Run("bench", "--model", TestPaths.Repo("models", "stories260K.gguf"), "-p", "8", "-n", "4", "-r", "2", "--json");
        r.ExitCode.Should().Be(0, r.Stderr);
        using var doc = System.Text.Json.JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        root.GetProperty("pp").GetProperty("tokens_per_second").GetDouble().Should().BePositive();
        root.GetProperty("pp").GetProperty("samples_tokens_per_second").GetArrayLength().Should().Be(2);
        root.GetProperty("tg").GetProperty("tokens_per_second").GetDouble().Should().BePositive();
        root.GetProperty("tg").GetProperty("bandwidth_share").GetDouble().Should().BePositive();
        root.GetProperty("weight_bytes_per_token").GetInt64().Should().BePositive();
        r.Stderr.Should().Contain("warm-up");
    }

    [Fact]
    public void Bench_measures_at_a_depth_with_parallel_sequences_and_profiles_the_operations()
    {
        var r = CliRunner.Run("bench", "--model", TestPaths.Repo("models", "stories260K.gguf"), "-p", "8", "-n", "4", "-r", "1",
            "-d", "40", "--parallel", "3", "--kv-type", "q8_0", "--profile", "--json");
        r.ExitCode.Should().Be(0, r.Stderr);
        using var doc = System.Text.Json.JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        root.GetProperty("depth").GetInt32().Should().Be(40);
        root.GetProperty("parallel").GetInt32().Should().Be(3);
        root.GetProperty("kv_type").GetString().Should().Be("q8_0");
        root.GetProperty("pp").GetProperty("test").GetString().Should().Be("pp8@d40");
        var tg = root.GetProperty("tg");
        tg.GetProperty("test").GetString().Should().Be("tg4@d40x3");
        tg.GetProperty("tokens").GetInt32().Should().Be(12, "tg counts the tokens of every sequence: the aggregate rate");
        var operations = tg.GetProperty("operations").EnumerateArray()
            .ToDictionary(o => o.GetProperty("operation").GetString()!, o => o.GetProperty("calls").GetInt64());
        operations.Should().ContainKey("attention").WhoseValue.Should().Be(4 * 5, "one attention per layer per step (5 layers, 4 steps)");
        operations.Should().ContainKey("sampling").WhoseValue.Should().Be(4);
        operations.Keys.Should().Contain(k => k.StartsWith("matmul "));
        root.GetProperty("pp").GetProperty("operations").EnumerateArray().Should().NotBeEmpty();
    }

    [Fact]
    public void Bench_refuses_a_depth_beyond_the_context_and_a_bad_kv_type()
    {
        var model = TestPaths.Repo("models", "stories260K.gguf");
        var deep = CliRunner.Run("bench", "--model", model, "-p", "8", "-n", "4", "-d", "100000");
        deep.ExitCode.Should().Be(2);
        deep.Stderr.Should().Contain("context");
        var kv = CliRunner.Run("bench", "--model", model, "--kv-type", "q4");
        kv.ExitCode.Should().Be(2);
        kv.Stderr.Should().Contain("--kv-type must be f16, f32 or q8_0");
    }

    [Fact]
    public void Run_takes_the_kv_cache_options_and_states_the_pool_it_made()
    {
        // stories260K: 5 layers x 32 positions x (32 + 32) f32 values = 40 KiB a block, so 256 KiB holds 6 blocks.
        var r = CliRunner.Run("run", "Once upon a time", "-n", "20", "--temperature", "0", "--json",
            "--kv-type", "f32", "--kv-budget", "256KiB", "--ctx", "64", "--parallel", "2");
        r.ExitCode.Should().Be(0, r.Stderr);
        r.Stderr.Should().Contain("KV cache: 192 tokens (6 blocks of 32, f32");
        var f16 = CliRunner.Run("run", "Once upon a time", "-n", "20", "--temperature", "0", "--json");
        r.Stdout.Should().Be(f16.Stdout, "greedy text on this model does not depend on the cache's element type");

        var bad = CliRunner.Run("run", "Once", "--kv-budget", "12XB");
        bad.ExitCode.Should().Be(2);
        bad.Stderr.Should().Contain("--kv-budget must be a size");
        var small = CliRunner.Run("run", "Once", "--kv-budget", "100");
        small.ExitCode.Should().NotBe(0);
        small.Stderr.Should().Contain("less than one KV block");
    }

    [Fact]
    public void Bench_rejects_nothing_to_measure()
    {
        var r = CliRunner.Run("bench", "--model", TestPaths.Repo("models", "stories260K.gguf"), "-p", "0", "-n", "0");
        r.ExitCode.Should().Be(2);
        r.Stderr.Should().Contain("nothing to measure");
    }

    /// <summary>Every matrix once; the embedding table adds one row when the output is separate (stories260K)
    /// and nothing when the output is the table itself (fx-llama-tied).</summary>
    [Theory]
    [InlineData("models/stories260K.gguf", false)]
    [InlineData("Engine.Tests/Fixtures/fx-llama-tied-F32.gguf", true)]
    public void Bytes_per_token_count_each_matrix_once(string relativePath, bool tied)
    {
        using var model = LoadedModel.Open(TestPaths.Repo(relativePath.Split('/')));
        var w = model.Model.Weights;
        long expected = w.Output.View.ByteSize + (tied ? 0 : w.TokenEmbedding.RowBytes);
        foreach (var l in w.Layers)
        {
            var f = (SwiGluWeights)l.FeedForward;
            expected += l.Query.View.ByteSize + l.Key.View.ByteSize + l.Value.View.ByteSize + l.Output.View.ByteSize
                      + f.Gate.View.ByteSize + f.Up.View.ByteSize + f.Down.View.ByteSize;
        }
        WeightTraffic.BytesPerToken(w, model.Config).Should().Be(expected);
    }

    /// <summary>A mixture-of-experts layer counts its router and only the experts a token uses (2 of 8 here).</summary>
    [Fact]
    public void Bytes_per_token_count_only_the_used_experts()
    {
        using var model = LoadedModel.Open(TestPaths.Repo("Engine.Tests", "Fixtures", "fx-qwen3moe-Q8_0.gguf"));
        var w = model.Model.Weights;
        model.Config.ExpertsPerToken.Should().Be(2);
        long expected = w.Output.View.ByteSize + w.TokenEmbedding.RowBytes;
        foreach (var l in w.Layers)
        {
            var m = (MixtureOfExpertsWeights)l.FeedForward;
            var e = m.Expert(0);
            expected += l.Query.View.ByteSize + l.Key.View.ByteSize + l.Value.View.ByteSize + l.Output.View.ByteSize
                      + m.Router.View.ByteSize + 2 * (e.Gate.View.ByteSize + e.Up.View.ByteSize + e.Down.View.ByteSize);
        }
        WeightTraffic.BytesPerToken(w, model.Config).Should().Be(expected);
    }
}
