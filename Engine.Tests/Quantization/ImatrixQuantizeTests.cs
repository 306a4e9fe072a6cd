using System.Buffers.Binary;
using System.Text.Json;
using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Tests.Support;
using global::Engine.Quantization;

namespace Engine.Tests.Quantization;

/// <summary>`engine quantize --imatrix` against llama-quantize --imatrix (built from the oracle's commit, de3ff81): the
/// files it wrote for the shared fixtures with their importance matrices (Golden/imatrix, made by llama-imatrix), and for
/// the repository's stories260K, stored in TestData/quantize (see its README). The imatrix path is recorded in the file,
/// so each run records the path string llama-quantize was given to compare whole files.</summary>
public sealed class ImatrixQuantizeTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("imatrix-quantize-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static readonly JsonElement Reference =
        JsonDocument.Parse(File.ReadAllText(TestPaths.Repo("Engine.Tests", "TestData", "quantize", "fixtures.json"))).RootElement;
    static readonly JsonElement Stories =
        JsonDocument.Parse(File.ReadAllText(TestPaths.Repo("Engine.Tests", "TestData", "quantize", "stories260K-imatrix.json"))).RootElement;

    static readonly string StoriesModel = TestPaths.Repo("models", "stories260K.gguf");
    static readonly string StoriesImatrix = TestPaths.Repo("Engine.Tests", "Golden", "imatrix", "stories260K.ctx128.imatrix.gguf");

    public static TheoryData<string, string> Types()
    {
        var d = new TheoryData<string, string>();
        foreach (var fixture in Reference.EnumerateObject())
            foreach (var run in fixture.Value.GetProperty("runs").EnumerateObject())
                if (!run.Name.Contains('-', StringComparison.Ordinal)) d.Add(fixture.Name, run.Name);
        return d;
    }

    public static TheoryData<string> StoriesTypes()
    {
        var d = new TheoryData<string>();
        foreach (var run in Stories.GetProperty("runs").EnumerateObject()) d.Add(run.Name);
        return d;
    }

    /// <summary>Quantizes a fixture with its importance matrix (the GGUF one, or the legacy .dat), recording the path as
    /// llama-quantize recorded it.</summary>
    string Quantize(string fixture, string type, bool pure = false, bool legacy = false, int threads = 2)
    {
        var entry = Reference.GetProperty(fixture);
        var source = TestPaths.Shared("fixtures", entry.GetProperty("source").GetString()!)
                     ?? throw new InvalidOperationException("fixture missing from ../shared");
        var recorded = entry.GetProperty(legacy ? "imatrix_dat" : "imatrix").GetString()!;
        var output = Path.Combine(_dir, $"{fixture}-{type}-imatrix{(pure ? "-pure" : "")}{(legacy ? "-dat" : "")}-{threads}.gguf");
        ModelQuantizer.Quantize(source, output, new QuantizeOptions
        {
            Type = type, Pure = pure, Threads = threads,
            ImatrixPath = TestPaths.Repo(recorded.Split('/')), RecordedImatrixPath = recorded,
        }, null, CancellationToken.None);
        return output;
    }

    [SharedTheory, MemberData(nameof(Types))]
    public void Fixture_quantizes_with_an_imatrix_to_llama_cpp_bytes(string fixture, string type)
    {
        var runs = Reference.GetProperty(fixture).GetProperty("runs");
        // The imatrix has to matter: only Q8_0, whose quantizer ignores importance, keeps the plain run's data.
        (runs.GetProperty(type + "-imatrix").GetProperty("data_sha256").GetString() == runs.GetProperty(type).GetProperty("data_sha256").GetString())
            .Should().Be(type == "Q8_0", "llama-quantize's imatrix run of {0} {1} differs from the plain one exactly when the type uses importance", fixture, type);

        ModelQuantizerTests.ShouldMatchReference(Quantize(fixture, type), fixture, type + "-imatrix");
        // --pure with an imatrix on the dense llama and on the MoE fixture (3-D experts, each with its own importance);
        // the legacy .dat (llama-imatrix --output-format dat) on llama.
        if (fixture is "llama" or "qwen3moe")
            ModelQuantizerTests.ShouldMatchReference(Quantize(fixture, type, pure: true), fixture, type + "-imatrix-pure");
        if (fixture == "llama")
            ModelQuantizerTests.ShouldMatchReference(Quantize(fixture, type, legacy: true), fixture, type + "-imatrix-dat");
    }

    /// <summary>No ../shared needed: the repository's model and imatrix, every type (its 64- and 172-column rows send
    /// them all to the weighted 32-block quantizers, or F16).</summary>
    [Theory, MemberData(nameof(StoriesTypes))]
    public void Stories260K_quantizes_with_an_imatrix_to_llama_cpp_bytes(string type)
    {
        var output = Path.Combine(_dir, $"stories-{type}.gguf");
        var recorded = Stories.GetProperty("imatrix").GetString()!;
        ModelQuantizer.Quantize(StoriesModel, output, new QuantizeOptions
        {
            Type = type, Threads = 2, ImatrixPath = StoriesImatrix, RecordedImatrixPath = recorded,
        }, null, CancellationToken.None);
        ModelQuantizerTests.ShouldMatchReference(output, Stories, "stories260K", type);
    }

    [SharedFact]
    public void Output_with_an_imatrix_does_not_depend_on_the_thread_count()
    {
        var one = File.ReadAllBytes(Quantize("qwen3moe", "Q4_K_M", threads: 1));
        var three = File.ReadAllBytes(Quantize("qwen3moe", "Q4_K_M", threads: 3));
        three.Should().Equal(one);
    }

    [Fact]
    public void The_imatrix_keys_follow_the_file_type_as_llama_quantize_writes_them()
    {
        var output = Path.Combine(_dir, "keys.gguf");
        ModelQuantizer.Quantize(StoriesModel, output, new QuantizeOptions { Type = "Q4_0", ImatrixPath = StoriesImatrix }, null, CancellationToken.None);
        using var gguf = GgufFile.Open(output);
        gguf.MetadataList.Select(kv => kv.Key).TakeLast(5).Should().Equal(GgufKeys.FileType, "quantize.imatrix.file",
            "quantize.imatrix.dataset", "quantize.imatrix.entries_count", "quantize.imatrix.chunks_count");
        gguf.Metadata.GetString("quantize.imatrix.file").Should().Be(StoriesImatrix, "the path as given is recorded");
        gguf.Metadata.GetString("quantize.imatrix.dataset").Should().Be("Engine.Tests/Golden/perplexity/story.txt");
        gguf.Metadata["quantize.imatrix.entries_count"].Type.Should().Be(GgufValueType.UInt32);
        gguf.Metadata.GetInteger("quantize.imatrix.entries_count").Should().Be(35);
        gguf.Metadata.GetInteger("quantize.imatrix.chunks_count").Should().Be(4);
    }

    [Fact]
    public void Include_and_exclude_select_the_entries_that_are_used()
    {
        var weighted = new List<string>();
        var output = Path.Combine(_dir, "include.gguf");
        ModelQuantizer.Quantize(StoriesModel, output, new QuantizeOptions
        {
            Type = "Q4_0", ImatrixPath = StoriesImatrix, IncludeWeights = ["attn_q", "ffn_up"],
        }, new Callback(p => { if (p.Weighted) weighted.Add(p.Name); }), CancellationToken.None);
        weighted.Should().HaveCount(10).And.OnlyContain(n => n.Contains("attn_q") || n.Contains("ffn_up"));
        using (var gguf = GgufFile.Open(output)) gguf.Metadata.GetInteger("quantize.imatrix.entries_count").Should().Be(10);

        // Excluding every entry leaves no imatrix at all, as llama-quantize: the plain result, no imatrix keys.
        var none = Path.Combine(_dir, "none.gguf");
        var plain = Path.Combine(_dir, "plain.gguf");
        ModelQuantizer.Quantize(StoriesModel, none, new QuantizeOptions { Type = "Q4_0", ImatrixPath = StoriesImatrix, ExcludeWeights = ["blk."] }, null, CancellationToken.None);
        ModelQuantizer.Quantize(StoriesModel, plain, new QuantizeOptions { Type = "Q4_0" }, null, CancellationToken.None);
        File.ReadAllBytes(none).Should().Equal(File.ReadAllBytes(plain));
    }

    [Fact]
    public void An_imatrix_for_another_model_is_refused_and_nothing_is_written()
    {
        // Same tensor names, other widths: fx-llama's imatrix (256 columns) for stories260K (64).
        var output = Path.Combine(_dir, "out.gguf");
        var wrongSize = () => ModelQuantizer.Quantize(StoriesModel, output, new QuantizeOptions
        {
            Type = "Q4_0", ImatrixPath = TestPaths.Repo("Engine.Tests", "Golden", "imatrix", "fx-llama-F32.ctx128.imatrix.gguf"),
        }, null, CancellationToken.None);
        wrongSize.Should().Throw<QuantizationException>().Where(e => e.Kind == QuantizationErrorKind.BadImatrix
            && e.Message.Contains("blk.0.attn_k.weight") && e.Message.Contains("another model"));

        // No name in common.
        var foreign = WriteImatrix("foreign.gguf", ("blk.0.mixer.weight", new float[64], [4f]));
        var noMatch = () => ModelQuantizer.Quantize(StoriesModel, output, new QuantizeOptions { Type = "Q4_0", ImatrixPath = foreign }, null, CancellationToken.None);
        noMatch.Should().Throw<QuantizationException>().Where(e => e.Kind == QuantizationErrorKind.BadImatrix
            && e.Message.Contains("no entry for any tensor") && e.Message.Contains("engine imatrix"));
        File.Exists(output).Should().BeFalse();
    }

    [Fact]
    public void A_non_finite_importance_or_missing_metadata_is_refused()
    {
        var sums = Enumerable.Repeat(1f, 64).ToArray();
        sums[5] = float.NaN;
        var nan = WriteImatrix("nan.gguf", ("blk.0.attn_q.weight", sums, [4f]));
        var act = () => ModelQuantizer.Quantize(StoriesModel, Path.Combine(_dir, "o.gguf"), new QuantizeOptions { Type = "Q4_0", ImatrixPath = nan }, null, CancellationToken.None);
        act.Should().Throw<QuantizationException>().Where(e => e.Kind == QuantizationErrorKind.BadImatrix && e.Message.Contains("non-finite"));

        var bare = Path.Combine(_dir, "bare.gguf");
        new GgufWriter()
            .AddTensor("blk.0.attn_q.weight.in_sum2", GgmlType.F32, [64], new byte[64 * 4])
            .AddTensor("blk.0.attn_q.weight.counts", GgmlType.F32, [1], new byte[4])
            .WriteTo(bare);
        var noMetadata = () => ModelQuantizer.Quantize(StoriesModel, Path.Combine(_dir, "o.gguf"), new QuantizeOptions { Type = "Q4_0", ImatrixPath = bare }, null, CancellationToken.None);
        noMetadata.Should().Throw<QuantizationException>().Where(e => e.Kind == QuantizationErrorKind.BadImatrix && e.Message.Contains("missing imatrix metadata"));
        Directory.GetFiles(_dir).Should().BeEquivalentTo(new[] { nan, bare });
    }

    [Fact]
    public void Corrupt_imatrix_files_are_format_errors()
    {
        var good = File.ReadAllBytes(StoriesImatrix);
        var truncated = Path.Combine(_dir, "truncated.gguf");
        File.WriteAllBytes(truncated, good.AsSpan(0, good.Length - 100).ToArray());
        FluentActions.Invoking(() => ImportanceMatrixFile.Load(truncated)).Should().Throw<ModelFormatException>()
            .Which.Kind.Should().Be(FormatErrorKind.TensorOutOfBounds);

        var orphan = Path.Combine(_dir, "orphan.gguf");
        ImatrixWriter().AddTensor("blk.0.attn_q.weight.in_sum2", GgmlType.F32, [64], new byte[64 * 4]).WriteTo(orphan);
        FluentActions.Invoking(() => ImportanceMatrixFile.Load(orphan)).Should().Throw<ModelFormatException>()
            .Where(e => e.Kind == FormatErrorKind.MissingKey && e.Field == "blk.0.attn_q.weight.counts");

        var f16 = Path.Combine(_dir, "f16.gguf");
        ImatrixWriter().AddTensor("w.in_sum2", GgmlType.F16, [64], new byte[64 * 2]).AddTensor("w.counts", GgmlType.F32, [1], new byte[4]).WriteTo(f16);
        FluentActions.Invoking(() => ImportanceMatrixFile.Load(f16)).Should().Throw<ModelFormatException>()
            .Which.Kind.Should().Be(FormatErrorKind.UnknownTensorType);

        var uneven = Path.Combine(_dir, "uneven.gguf");
        ImatrixWriter().AddTensor("w.in_sum2", GgmlType.F32, [63], new byte[63 * 4]).AddTensor("w.counts", GgmlType.F32, [1, 2], new byte[8]).WriteTo(uneven);
        FluentActions.Invoking(() => ImportanceMatrixFile.Load(uneven)).Should().Throw<ModelFormatException>()
            .Which.Kind.Should().Be(FormatErrorKind.InvalidShape);

        // Legacy files: a name or value count running past the end, and a file that is neither format.
        var legacy = File.ReadAllBytes(TestPaths.Repo("Engine.Tests", "Golden", "imatrix", "fx-llama-F32.ctx128.imatrix.dat"));
        var cut = Path.Combine(_dir, "cut.dat");
        File.WriteAllBytes(cut, legacy.AsSpan(0, 500).ToArray());
        FluentActions.Invoking(() => ImportanceMatrixFile.Load(cut)).Should().Throw<ModelFormatException>()
            .Which.Kind.Should().Be(FormatErrorKind.LengthTooLarge);
        var longName = Path.Combine(_dir, "long-name.dat");
        var bytes = legacy.ToArray();
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), int.MaxValue);
        File.WriteAllBytes(longName, bytes);
        FluentActions.Invoking(() => ImportanceMatrixFile.Load(longName)).Should().Throw<ModelFormatException>()
            .Where(e => e.Kind == FormatErrorKind.LengthTooLarge && e.Offset == 4);
        var text = Path.Combine(_dir, "text.dat");
        File.WriteAllText(text, "");
        FluentActions.Invoking(() => ImportanceMatrixFile.Load(text)).Should().Throw<ModelFormatException>()
            .Which.Kind.Should().Be(FormatErrorKind.FileTooShort);
    }

    [Fact]
    public void The_legacy_file_reads_as_the_gguf_one_from_the_same_run()
    {
        // llama-imatrix wrote both from one run of fx-llama: the legacy values are sums / count * calls, so after
        // llama-quantize's division by the calls the two agree to float rounding.
        var gguf = ImportanceWeights.Load(TestPaths.Repo("Engine.Tests", "Golden", "imatrix", "fx-llama-F32.ctx128.imatrix.gguf"), [], []);
        var dat = ImportanceWeights.Load(TestPaths.Repo("Engine.Tests", "Golden", "imatrix", "fx-llama-F32.ctx128.imatrix.dat"), [], []);
        dat.Count.Should().Be(gguf.Count).And.Be(14);
        dat.ChunkCount.Should().Be(4);
        dat.Dataset.Should().Be(gguf.Dataset);
        var a = gguf.Find("blk.1.ffn_down.weight")!;
        var b = dat.Find("blk.1.ffn_down.weight")!;
        b.Should().HaveCount(512);
        for (int i = 0; i < a.Length; i++) b[i].Should().BeApproximately(a[i], 1e-5f * Math.Abs(a[i]) + 1e-12f);
    }

    [Fact]
    public void A_matrix_no_token_reached_gets_importance_one()
    {
        // Two experts of 4 columns; the second was never routed to.
        var path = WriteImatrix("experts.gguf", ("blk.0.ffn_up_exps.weight", [2, 4, 6, 8, 5, 5, 5, 5], [2f, 0f]));
        ImportanceWeights.Load(path, [], []).Find("blk.0.ffn_up_exps.weight").Should().Equal(1, 2, 3, 4, 1, 1, 1, 1);
    }

    [Fact]
    public void Cli_quantizes_with_an_imatrix_and_says_what_is_wrong()
    {
        var output = Path.Combine(_dir, "cli.gguf");
        var ok = CliRunner.Run("quantize", StoriesModel, output, "IQ4_NL", "--imatrix", StoriesImatrix, "--threads", "2");
        ok.ExitCode.Should().Be(0, ok.Stderr);
        ok.Stderr.Should().Contain("token_embd.weight").And.Contain("(no importance data)");
        ModelQuantizerTests.ShouldMatchReference(output, Stories, "stories260K", "IQ4_NL", wholeFile: false);

        var missing = CliRunner.Run("quantize", StoriesModel, Path.Combine(_dir, "x.gguf"), "Q4_0", "--imatrix", "no-such.imatrix");
        missing.ExitCode.Should().Be(2);
        missing.Stderr.Should().Contain("no such imatrix file: no-such.imatrix");

        var other = CliRunner.Run("quantize", StoriesModel, Path.Combine(_dir, "x.gguf"), "Q4_0", "--imatrix",
            TestPaths.Repo("Engine.Tests", "Golden", "imatrix", "fx-llama-F32.ctx128.imatrix.gguf"));
        other.ExitCode.Should().Be(1);
        other.Stderr.Should().Contain("computed for another model");

        var both = CliRunner.Run("quantize", StoriesModel, Path.Combine(_dir, "x.gguf"), "Q4_0", "--imatrix", StoriesImatrix,
            "--include-weights", "attn", "--exclude-weights", "ffn");
        both.ExitCode.Should().Be(2);
        both.Stderr.Should().Contain("not both");
        File.Exists(Path.Combine(_dir, "x.gguf")).Should().BeFalse();
    }

    /// <summary>What the weights are for: with importance on a quarter of the columns, the weighted quantizer's error
    /// on those columns (importance-weighted squared error over 16 random rows) is below the plain quantizer's. Q8_0
    /// ignores importance and gives the plain bytes.</summary>
    [Theory]
    [InlineData(GgmlType.Q4_0)] [InlineData(GgmlType.Q4_1)] [InlineData(GgmlType.Q5_0)] [InlineData(GgmlType.Q5_1)]
    [InlineData(GgmlType.Q2_K)] [InlineData(GgmlType.Q3_K)] [InlineData(GgmlType.Q4_K)] [InlineData(GgmlType.Q5_K)]
    [InlineData(GgmlType.Q6_K)] [InlineData(GgmlType.IQ4_NL)] [InlineData(GgmlType.IQ4_XS)] [InlineData(GgmlType.Q8_0)]
    public void Importance_moves_precision_to_the_important_columns(GgmlType type)
    {
        const int n = 512;
        var quantizer = RowFormats.QuantizerFor(type)!;
        var format = RowFormats.For(type);
        var random = new Random(7);
        var importance = new float[n];
        for (int i = 0; i < n; i++) importance[i] = i % 4 == 1 ? 100f : 0.01f;
        var x = new float[n];
        var plain = new byte[RowEncoder.RowBytes(type, n)];
        var weighted = new byte[plain.Length];
        var back = new float[n];
        double plainError = 0, weightedError = 0;
        for (int row = 0; row < 16; row++)
        {
            for (int i = 0; i < n; i++) x[i] = (float)(random.NextDouble() * 2 - 1) * (i % 7 == 0 ? 3f : 1f);
            quantizer.QuantizeRowReference(x, plain);
            quantizer.QuantizeRowWeighted(x, weighted, importance);
            format.DequantizeRowReference(plain, back);
            for (int i = 0; i < n; i++) plainError += importance[i] * (back[i] - x[i]) * (back[i] - x[i]);
            format.DequantizeRowReference(weighted, back);
            for (int i = 0; i < n; i++) weightedError += importance[i] * (back[i] - x[i]) * (back[i] - x[i]);
            if (type == GgmlType.Q8_0) weighted.Should().Equal(plain);
        }
        if (type != GgmlType.Q8_0) weightedError.Should().BeLessThan(plainError * 0.9, $"{type}: importance-weighted error");
    }

    static GgufWriter ImatrixWriter() => new GgufWriter()
        .AddMetadata("general.type", "imatrix")
        .AddMetadata("imatrix.datasets", new[] { "test" })
        .AddMetadata("imatrix.chunk_count", 1u)
        .AddMetadata("imatrix.chunk_size", 512u);

    /// <summary>An imatrix GGUF of the given entries: name, sums (columns x matrices), counts (one per matrix).</summary>
    string WriteImatrix(string fileName, params (string Name, float[] Sums, float[] Counts)[] entries)
    {
        var writer = ImatrixWriter();
        foreach (var (name, sums, counts) in entries)
        {
            long columns = sums.Length / counts.Length;
            writer.AddTensor(name + ".in_sum2", GgmlType.F32, counts.Length == 1 ? [columns] : [columns, counts.Length], Bytes(sums));
            writer.AddTensor(name + ".counts", GgmlType.F32, counts.Length == 1 ? [1] : [1, counts.Length], Bytes(counts));
        }
        var path = Path.Combine(_dir, fileName);
        writer.WriteTo(path);
        return path;
    }

    static byte[] Bytes(float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), values[i]);
        return bytes;
    }

    sealed class Callback(Action<QuantizeProgress> report) : IProgress<QuantizeProgress>
    {
        public void Report(QuantizeProgress value) => report(value);
    }
}
