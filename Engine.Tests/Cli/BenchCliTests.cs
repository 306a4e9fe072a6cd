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
