using System.Security.Cryptography;
using System.Text.Json;
using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Tests.Support;
using global::Engine.Quantization;

namespace Engine.Tests.Quantization;

/// <summary>`engine quantize` against llama.cpp's quantizer: the tensor types and bytes llama-quantize (through the
/// oracle, commit de3ff81) wrote for the shared fixtures, stored in TestData/quantize (see its README).</summary>
public sealed class ModelQuantizerTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("quantize-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static readonly JsonElement Reference =
        JsonDocument.Parse(File.ReadAllText(TestPaths.Repo("Engine.Tests", "TestData", "quantize", "fixtures.json"))).RootElement;

    public static TheoryData<string, string> FixtureRuns()
    {
        var d = new TheoryData<string, string>();
        foreach (var fixture in Reference.EnumerateObject())
            foreach (var run in fixture.Value.GetProperty("runs").EnumerateObject())
                if (!run.Name.Contains('-', StringComparison.Ordinal)) d.Add(fixture.Name, run.Name);
        return d;
    }

    string Quantize(string fixture, string type, bool pure, int threads = 2)
    {
        var source = TestPaths.Shared("fixtures", Reference.GetProperty(fixture).GetProperty("source").GetString()!)
                     ?? throw new InvalidOperationException("fixture missing from ../shared");
        var output = Path.Combine(_dir, $"{fixture}-{type}{(pure ? "-pure" : "")}-{threads}.gguf");
        ModelQuantizer.Quantize(source, output, new QuantizeOptions { Type = type, Pure = pure, Threads = threads }, null, CancellationToken.None);
        return output;
    }

    /// <summary>The tensors' names, order, types and data of llama-quantize's output for this fixture and run, and (unless
    /// only the tensors are compared, as for a file whose metadata came from elsewhere) the whole file's bytes.</summary>
    internal static void ShouldMatchReference(string path, string fixture, string run, bool wholeFile = true) =>
        ShouldMatchReference(path, Reference.GetProperty(fixture), fixture, run, wholeFile);

    /// <summary>As above against a reference entry of that form ("names" optional, "runs").</summary>
    internal static void ShouldMatchReference(string path, JsonElement expected, string fixture, string run, bool wholeFile = true)
    {
        var reference = expected.GetProperty("runs").GetProperty(run);
        using (var gguf = GgufFile.Open(path))
        {
            if (expected.TryGetProperty("names", out var names))
                gguf.Tensors.Select(t => t.Name).Should().Equal(names.EnumerateArray().Select(e => e.GetString()),
                    "tensors are written in llama.cpp's order");
            var types = reference.GetProperty("types").GetString()!.Split(' ');
            gguf.Tensors.Select(t => t.Type.Info().Name).Should().Equal(types, $"{fixture} {run} tensor types");
            using var data = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            foreach (var t in gguf.Tensors) data.AppendData(gguf.GetTensor(t.Name).Bytes);
            System.Convert.ToHexStringLower(data.GetHashAndReset()).Should().Be(reference.GetProperty("data_sha256").GetString(),
                $"{fixture} {run} tensor data");
        }
        if (wholeFile)
            System.Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path))).Should().Be(reference.GetProperty("file_sha256").GetString(),
            $"{fixture} {run} whole file (metadata included)");
    }

    [SharedTheory, MemberData(nameof(FixtureRuns))]
    public void Fixture_quantizes_to_llama_cpp_bytes(string fixture, string type)
    {
        ShouldMatchReference(Quantize(fixture, type, pure: false), fixture, type);
        // --pure only changes the type choice, which the other fixtures do not exercise differently; once per type
        // keeps the suite fast (the reference holds all four, and make_reference.sh checks them).
        if (fixture == "llama") ShouldMatchReference(Quantize(fixture, type, pure: true), fixture, type + "-pure");
    }

    [SharedFact]
    public void Output_does_not_depend_on_the_thread_count()
    {
        var one = File.ReadAllBytes(Quantize("qwen3", "Q4_K_M", pure: false, threads: 1));
        var three = File.ReadAllBytes(Quantize("qwen3", "Q4_K_M", pure: false, threads: 3));
        three.Should().Equal(one);
    }

    [SharedFact]
    public void Cancelling_leaves_no_file_behind()
    {
        var source = TestPaths.Shared("fixtures", "fx-llama-F32.gguf")!;
        var output = Path.Combine(_dir, "cancelled.gguf");
        using var cts = new CancellationTokenSource();
        var progress = new Callback(p => { if (p.Index == 3) cts.Cancel(); });
        var act = () => ModelQuantizer.Quantize(source, output, new QuantizeOptions { Type = "Q4_K_M" }, progress, cts.Token);
        act.Should().Throw<OperationCanceledException>();
        Directory.GetFiles(_dir).Should().BeEmpty();
    }

    [SharedFact]
    public void A_quantized_input_is_refused_without_allow_requantize_and_nothing_is_written()
    {
        var source = TestPaths.Shared("fixtures", "fx-llama-Q8_0.gguf")!;
        var output = Path.Combine(_dir, "requantized.gguf");
        var act = () => ModelQuantizer.Quantize(source, output, new QuantizeOptions { Type = "Q4_0" }, null, CancellationToken.None);
        act.Should().Throw<QuantizationException>().Which.Kind.Should().Be(QuantizationErrorKind.AlreadyQuantized);
        Directory.GetFiles(_dir).Should().BeEmpty();

        ModelQuantizer.Quantize(source, output, new QuantizeOptions { Type = "Q4_0", AllowRequantize = true }, null, CancellationToken.None);
        using var gguf = GgufFile.Open(output);
        gguf.GetTensor("blk.0.attn_q.weight").Type.Should().Be(GgmlType.Q4_0);
    }

    [Fact]
    public void An_unknown_type_names_the_valid_ones()
    {
        var act = () => ModelQuantizer.Quantize(TestPaths.Repo("models", "stories260K.gguf"), Path.Combine(_dir, "x.gguf"),
            new QuantizeOptions { Type = "Q4_K_X" }, null, CancellationToken.None);
        act.Should().Throw<QuantizationException>().Where(e => e.Kind == QuantizationErrorKind.UnknownType
            && e.Message.Contains("Q4_K_M") && e.Message.Contains("IQ4_XS"));
    }

    [Fact]
    public void A_corrupt_input_is_a_format_error_and_nothing_is_written()
    {
        var bad = Path.Combine(_dir, "bad.gguf");
        var bytes = File.ReadAllBytes(TestPaths.Repo("models", "stories260K.gguf"));
        File.WriteAllBytes(bad, bytes.AsSpan(0, bytes.Length / 2).ToArray());
        var output = Path.Combine(_dir, "out.gguf");
        var act = () => ModelQuantizer.Quantize(bad, output, new QuantizeOptions { Type = "Q8_0" }, null, CancellationToken.None);
        act.Should().Throw<ModelFormatException>();
        Directory.GetFiles(_dir).Should().Equal(bad);
    }

    /// <summary>The type choice on a real model's tensor list (Qwen2.5-1.5B: 28 layers, 6 query heads per KV head, tied
    /// embeddings, hidden size 1536), against the types llama.cpp chose for the benchmark preset of that shape.</summary>
    [Theory]
    [InlineData("Q4_K_M")]
    [InlineData("Q8_0")]
    public void Type_choice_matches_llama_cpp_on_qwen2_5_1_5b(string mix)
    {
        var table = JsonDocument.Parse(File.ReadAllText(TestPaths.Repo("Engine.Tests", "TestData", "quantize", "qwen2.5-1.5b-types.json"))).RootElement;
        var tensors = table.GetProperty("tensors").EnumerateArray()
            .Select(t => new TensorShape(t[0].GetString()!, t.EnumerateArray().Skip(1).Select(d => d.GetInt64()).ToArray()))
            .ToList();
        tensors.Select(t => t.Name).Should().BeInAscendingOrder(TensorOrder.Instance, "the table is in llama.cpp's file order");
        var model = new ModelShape("qwen2", table.GetProperty("block_count").GetInt32(), 0,
            table.GetProperty("head_count").GetInt32(), table.GetProperty("head_count_kv").GetInt32());
        var types = TensorTypePlanner.Plan(tensors, tensors.Select(_ => GgmlType.F16).ToList(), QuantizationMixes.Find(mix)!, model,
            pure: false, hasImatrix: false);
        // 1-D tensors are copied as they are stored; in the preset they are F32.
        var expected = table.GetProperty("types").GetProperty(mix).GetString()!.Split(' ');
        types.Select((t, i) => tensors[i].Shape.Count == 1 ? "F32" : t.Info().Name).Should().Equal(expected);
    }

    [Fact]
    public void Tensor_order_is_by_block_number_then_name()
    {
        string[] names = ["blk.10.attn_q.weight", "token_embd.weight", "blk.2.ffn_up.weight", "blk.2.attn_k.weight", "output.weight"];
        names.Order(TensorOrder.Instance).Should().Equal(
            "output.weight", "token_embd.weight", "blk.2.attn_k.weight", "blk.2.ffn_up.weight", "blk.10.attn_q.weight");
    }

    [Fact]
    public void Cli_quantizes_with_progress_and_rejects_an_unknown_type()
    {
        var output = Path.Combine(_dir, "stories-q8.gguf");
        var ok = CliRunner.Run("quantize", TestPaths.Repo("models", "stories260K.gguf"), output, "q8_0", "--threads", "2");
        ok.ExitCode.Should().Be(0, ok.Stderr);
        ok.Stderr.Should().Contain("token_embd.weight").And.Contain("-> Q8_0");
        using (var gguf = GgufFile.Open(output))
        {
            gguf.Metadata[GgufKeys.FileType].AsInteger().Should().Be(7);
            gguf.MetadataList[^1].Key.Should().Be(GgufKeys.FileType, "llama.cpp appends the two keys it sets");
        }

        var bad = CliRunner.Run("quantize", TestPaths.Repo("models", "stories260K.gguf"), Path.Combine(_dir, "x.gguf"), "Q4_K_X");
        bad.ExitCode.Should().Be(2);
        bad.Stderr.Should().Contain("unknown type 'Q4_K_X'").And.Contain("Q4_K_M");
        File.Exists(Path.Combine(_dir, "x.gguf")).Should().BeFalse();
    }

    sealed class Callback(Action<QuantizeProgress> report) : IProgress<QuantizeProgress>
    {
        public void Report(QuantizeProgress value) => report(value);
    }
}
