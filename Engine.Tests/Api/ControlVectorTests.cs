using System.Text.Json;
using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Api;

/// <summary>Control vectors against llama.cpp's logits with the same files and layer ranges
/// (Engine.Tests/TestData/control-vectors, see its README.md): the fixtures fx-llama-F32 and fx-qwen2-F32 and the
/// shipped stories260K, all in the repository. Tolerance: F32 weights, max |difference| 1e-3 per logit.</summary>
public class ControlVectorTests
{
    const double Tolerance = 1e-3;
    static readonly string Folder = TestPaths.Repo("Engine.Tests", "TestData", "control-vectors");

    /// <summary>One case of cases.json: the model, the tokens, llama.cpp's options and its logits.</summary>
    public sealed record Case(string Name, string Model, int[] Tokens, int Vocab, string[] Options, float[] Logits)
    {
        public ReadOnlySpan<float> Row(int i) => Logits.AsSpan(i * Vocab, Vocab);
        public override string ToString() => Name;
    }

    static IReadOnlyList<Case> Cases { get; } = LoadCases();

    static List<Case> LoadCases()
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "cases.json")));
        return [.. json.RootElement.GetProperty("cases").EnumerateArray().Select(c => new Case(
            c.GetProperty("name").GetString()!,
            TestPaths.Repo(c.GetProperty("model").GetString()!.Split('/')),
            [.. c.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32())],
            c.GetProperty("n_vocab").GetInt32(),
            [.. c.GetProperty("options").EnumerateArray().Select(o => o.GetString()!)],
            GoldenCase.ReadFloats(Path.Combine(Folder, c.GetProperty("logits_file").GetString()!))))];
    }

    public static TheoryData<string> CaseNames => [.. Cases.Select(c => c.Name)];

    static Case Named(string name) => Cases.Single(c => c.Name == name);

    static string VectorFile(string name) => Path.Combine(Folder, name);

    /// <summary>The vector llama.cpp's options describe, built with the public API: each file times its strength,
    /// summed in order, then the layer range (A or B of 0 or less: the first or last layer).</summary>
    static ControlVector VectorFor(Case c)
    {
        var vectors = new List<ControlVector>();
        (int First, int Last)? range = null;
        var o = c.Options;
        for (int i = 0; i < o.Length; i++)
        {
            switch (o[i])
            {
                case "--control-vector": vectors.Add(ControlVector.Load(VectorFile(o[++i]))); break;
                case "--control-vector-scaled":
                    vectors.Add(ControlVector.Load(VectorFile(o[i + 1]), float.Parse(o[i + 2], System.Globalization.CultureInfo.InvariantCulture)));
                    i += 2;
                    break;
                case "--control-vector-layer-range": range = (int.Parse(o[i + 1]), int.Parse(o[i + 2])); i += 2; break;
                default: throw new InvalidDataException($"{c.Name}: unexpected option {o[i]}");
            }
        }
        var vector = ControlVector.Sum(vectors);
        return range is { } r ? vector.ForLayers(r.First <= 0 ? 1 : r.First, r.Last <= 0 ? int.MaxValue : r.Last) : vector;
    }

    static float[] AllLogits(Llama model, int[] tokens)
    {
        using var cache = model.CreateCache(tokens.Length);
        var logits = new float[tokens.Length * model.Config.VocabSize];
        model.Forward(tokens, 0, cache, logits);
        return logits;
    }

    static IDisposable Steer(LoadedModel model, ControlVector vector) =>
        vector.AddTo((points, hook) => model.Model.Hooks.Add(points, hook), model.Config.LayerCount, model.Config.EmbeddingLength);

    static double WorstRow(float[] ours, Case c)
    {
        double worst = 0;
        for (int i = 0; i < c.Tokens.Length; i++)
            worst = Math.Max(worst, LogitCompare.MaxAbsDiff(ours.AsSpan(i * c.Vocab, c.Vocab), c.Row(i)));
        return worst;
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Logits_match_llama_cpp_with_the_same_vectors_and_range(string name)
    {
        var c = Named(name);
        using var model = LoadedModel.Open(c.Model);
        var plain = AllLogits(model.Model, c.Tokens);
        float[] steered;
        using (Steer(model, VectorFor(c))) steered = AllLogits(model.Model, c.Tokens);

        double worst = WorstRow(steered, c), unsteered = WorstRow(plain, c);
        string report = $"{name}: steered max|diff| {worst:E2}; the plain model is {unsteered:E2} away";
        Console.WriteLine(report);
        worst.Should().BeLessThanOrEqualTo(Tolerance, report);
        // The vector matters: without it the logits are far outside the tolerance.
        unsteered.Should().BeGreaterThan(100 * Tolerance, report);
    }

    [Fact]
    public void Disposing_the_scope_restores_the_exact_original_logits()
    {
        var c = Named("stories260K.a");
        using var model = LoadedModel.Open(c.Model);
        var before = AllLogits(model.Model, c.Tokens);
        var scope = Steer(model, VectorFor(c));
        AllLogits(model.Model, c.Tokens).Should().NotEqual(before);
        scope.Dispose();
        scope.Dispose(); // a second disposal does nothing
        AllLogits(model.Model, c.Tokens).Should().Equal(before);
    }

    [Fact]
    public void Two_vectors_applied_at_once_add_up_as_their_sum_does()
    {
        var c = Named("fx-llama-F32.a+b");
        using var model = LoadedModel.Open(c.Model);
        var a = ControlVector.Load(VectorFile("fx-llama.a.cvec.gguf"));
        var b = ControlVector.Load(VectorFile("fx-llama.b.cvec.gguf"), -0.7f);
        float[] both;
        using (Steer(model, a))
        using (Steer(model, b))
            both = AllLogits(model.Model, c.Tokens);
        WorstRow(both, c).Should().BeLessThanOrEqualTo(Tolerance);
    }

    /// <summary>The last prompt row's logits, as a hook on result_output sees them during a one-token greedy generation.</summary>
    static async Task<float[]> LastPromptLogits(Model model, Session session, int[] tokens)
    {
        float[]? last = null;
        using (model.AddHook("result_output", (context, values) =>
               {
                   if (context.Sequence == session.Id && context.Phase == ForwardPhase.Prompt)
                       last = values[^context.Width..].ToArray();
               }))
        {
            await foreach (var _ in session.GenerateAsync(tokens, new GenerateOptions { Temperature = 0, MaxTokens = 1 })) { }
        }
        return last ?? throw new InvalidOperationException("result_output never fired for the prompt");
    }

    [Fact]
    public async Task The_public_api_steers_as_llama_cpp_does_model_wide_per_session_and_for_a_model_s_life()
    {
        var c = Named("stories260K.a+b.2-3");
        var vector = VectorFor(c);
        var expected = c.Row(c.Tokens.Length - 1).ToArray();

        using (var model = Model.Load(c.Model, new ModelLoadOptions { KvCacheType = KvCacheType.F32 }))
        {
            using (var session = model.CreateSession(64))
            using (model.ApplyControlVector(vector))
                LogitCompare.MaxAbsDiff(await LastPromptLogits(model, session, c.Tokens), expected).Should().BeLessThanOrEqualTo(Tolerance, "model-wide");

            // The same files through the range overload: a and b summed, layers 2 and 3.
            var files = ControlVector.Sum([ControlVector.Load(VectorFile("stories260K.a.cvec.gguf"), 0.5f), ControlVector.Load(VectorFile("stories260K.b.cvec.gguf"))]);
            using (var session = model.CreateSession(64))
            using (model.ApplyControlVector(files, 2, 3))
                LogitCompare.MaxAbsDiff(await LastPromptLogits(model, session, c.Tokens), expected).Should().BeLessThanOrEqualTo(Tolerance, "range overload");

            using var steered = model.CreateSession(64);
            using var plain = model.CreateSession(64);
            using (steered.ApplyControlVector(vector))
            {
                LogitCompare.MaxAbsDiff(await LastPromptLogits(model, steered, c.Tokens), expected).Should().BeLessThanOrEqualTo(Tolerance, "the steered session");
                LogitCompare.MaxAbsDiff(await LastPromptLogits(model, plain, c.Tokens), expected).Should().BeGreaterThan(100 * Tolerance, "another session is not steered");
            }
        }

        using (var model = Model.Load(c.Model, new ModelLoadOptions { KvCacheType = KvCacheType.F32, ControlVector = vector }))
        using (var session = model.CreateSession(64))
            LogitCompare.MaxAbsDiff(await LastPromptLogits(model, session, c.Tokens), expected).Should().BeLessThanOrEqualTo(Tolerance, "ModelLoadOptions.ControlVector");
    }

    [Fact]
    public async Task A_steered_session_shares_no_cached_prompt_with_an_unsteered_one()
    {
        var c = Named("stories260K.a");
        // Long enough for whole KV blocks of the prompt to be cached and offered to the next session with the same prompt.
        int[] tokens = [.. c.Tokens, .. c.Tokens, .. c.Tokens, .. c.Tokens, .. c.Tokens.Skip(1)];
        float[] plainLast;
        using (var reference = LoadedModel.Open(c.Model))
            plainLast = AllLogits(reference.Model, tokens)[^c.Vocab..];

        using var model = Model.Load(c.Model, new ModelLoadOptions { KvCacheType = KvCacheType.F32 });
        // One capturing hook for the whole test: adding or removing hooks empties the prefix cache, which would hide
        // what this test looks for.
        var last = new System.Collections.Concurrent.ConcurrentDictionary<long, float[]>();
        using var capture = model.AddHook("result_output", (context, values) =>
        {
            if (context.Phase == ForwardPhase.Prompt) last[context.Sequence] = values[^context.Width..].ToArray();
        });
        async Task<float[]> Prompt(Session session)
        {
            await foreach (var _ in session.GenerateAsync(tokens, new GenerateOptions { Temperature = 0, MaxTokens = 1 })) { }
            return last[session.Id];
        }

        using var steered = model.CreateSession(128);
        using var plain = model.CreateSession(128);
        using var laterSteered = model.CreateSession(128);
        using var steering = steered.ApplyControlVector(VectorFor(c));
        using var laterSteering = laterSteered.ApplyControlVector(VectorFor(c));
        var steeredLast = await Prompt(steered);
        LogitCompare.MaxAbsDiff(steeredLast, plainLast).Should().BeGreaterThan(100 * Tolerance);
        LogitCompare.MaxAbsDiff(await Prompt(plain), plainLast).Should().BeLessThanOrEqualTo(Tolerance, "the unsteered session after a steered one");
        LogitCompare.MaxAbsDiff(await Prompt(laterSteered), steeredLast).Should().BeLessThanOrEqualTo(Tolerance, "a steered session after an unsteered one");
    }

    [Fact]
    public void A_vector_that_does_not_fit_the_model_is_refused_naming_the_file()
    {
        var wide = VectorFile("fx-llama.a.cvec.gguf");
        var stories = TestPaths.Repo("models", "stories260K.gguf");
        var act = () => Model.Load(stories, new ModelLoadOptions { ControlVector = ControlVector.Load(wide) });
        act.Should().Throw<ControlVectorException>()
            .Where(e => e.Kind == ControlVectorErrorKind.WidthMismatch && e.FilePath == wide && e.Message.Contains("256") && e.Message.Contains("64"));

        // A file with directions beyond the model's layers was made for another model (llama.cpp would skip them silently).
        var deep = VectorFile("stories260K.a.cvec.gguf");
        using var fixture = LoadedModel.Open(TestPaths.Repo("Engine.Tests", "Fixtures", "fx-llama-F32.gguf"));
        var deepOnWide = ControlVector.FromDirections(new Dictionary<int, float[]> { [1] = new float[256], [2] = new float[256] });
        var steer = () => Steer(fixture, deepOnWide);
        steer.Should().Throw<ControlVectorException>().Where(e => e.Kind == ControlVectorErrorKind.LayerOutOfRange && e.Message.Contains("layers 1 to 1, not layer 2"));
        using var stories260K = LoadedModel.Open(stories);
        var fromFile = ControlVector.Load(deep).Scale(1f);
        ((Action)(() => Steer(stories260K, fromFile.ForLayers(1, 4)).Dispose())).Should().NotThrow();
        var wider = ControlVector.Sum([fromFile, ControlVector.FromDirections(new Dictionary<int, float[]> { [5] = new float[64] })]);
        ((Action)(() => Steer(stories260K, wider))).Should().Throw<ControlVectorException>()
            .Where(e => e.Kind == ControlVectorErrorKind.LayerOutOfRange && e.Message.Contains("1 to 4"));

        var path = Path.Combine(Path.GetTempPath(), $"engine-cvec-{Guid.NewGuid():N}.gguf");
        try
        {
            ControlVector.FromDirections(new Dictionary<int, float[]> { [5] = new float[64] }).Save(path);
            var fromDeepFile = ControlVector.Load(path);
            ((Action)(() => Steer(stories260K, fromDeepFile))).Should().Throw<ControlVectorException>()
                .Where(e => e.Kind == ControlVectorErrorKind.LayerOutOfRange && e.FilePath == path && e.TensorName == "direction.5");
        }
        finally { File.Delete(path); }
    }

    /// <summary>A control-vector file written by the repository's GGUF writer with the tensors given.</summary>
    static string WriteFile(params (string Name, Formats.GgmlType Type, long[] Shape, byte[] Data)[] tensors)
    {
        var writer = new Formats.Gguf.GgufWriter().AddMetadata("general.architecture", "controlvector");
        foreach (var (name, type, shape, data) in tensors) writer.AddTensor(name, type, shape, data);
        var path = Path.Combine(Path.GetTempPath(), $"engine-cvec-{Guid.NewGuid():N}.gguf");
        writer.WriteTo(path);
        return path;
    }

    static byte[] Floats(params float[] values) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    public static TheoryData<string, ControlVectorErrorKind, string?> BadFiles => new()
    {
        { "empty", ControlVectorErrorKind.NoDirections, null },
        { "other name", ControlVectorErrorKind.InvalidName, "output.weight" },
        { "no number", ControlVectorErrorKind.InvalidName, "direction.x" },
        { "trailing text", ControlVectorErrorKind.InvalidName, "direction.3abc" },
        { "negative", ControlVectorErrorKind.InvalidName, "direction.-1" },
        { "layer 0", ControlVectorErrorKind.LayerOutOfRange, "direction.0" },
        { "F16", ControlVectorErrorKind.NotF32, "direction.1" },
        { "2-D", ControlVectorErrorKind.NotOneDimensional, "direction.1" },
        { "widths differ", ControlVectorErrorKind.WidthMismatch, "direction.2" },
        { "NaN", ControlVectorErrorKind.NonFiniteValue, "direction.1" },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void A_bad_file_is_a_typed_error_naming_the_file_and_the_tensor(string problem, ControlVectorErrorKind kind, string? tensor)
    {
        var f32 = Formats.GgmlType.F32;
        var path = problem switch
        {
            "empty" => WriteFile(),
            "other name" => WriteFile(("direction.1", f32, [2], Floats(1, 2)), ("output.weight", f32, [2], Floats(1, 2))),
            "no number" or "trailing text" or "negative" or "layer 0" => WriteFile((tensor!, f32, [2], Floats(1, 2))),
            "F16" => WriteFile(("direction.1", Formats.GgmlType.F16, [2], new byte[4])),
            "2-D" => WriteFile(("direction.1", f32, [2, 2], Floats(1, 2, 3, 4))),
            "widths differ" => WriteFile(("direction.1", f32, [2], Floats(1, 2)), ("direction.2", f32, [3], Floats(1, 2, 3))),
            "NaN" => WriteFile(("direction.1", f32, [2], Floats(1, float.NaN))),
            _ => throw new ArgumentException(problem),
        };
        try
        {
            var act = () => ControlVector.Load(path);
            var error = act.Should().Throw<ControlVectorException>().Which;
            error.Kind.Should().Be(kind, error.Message);
            error.FilePath.Should().Be(path);
            error.TensorName.Should().Be(tensor);
            error.Message.Should().StartWith(path + ": ");
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void A_damaged_file_is_the_gguf_reader_s_typed_error()
    {
        var path = Path.Combine(Path.GetTempPath(), $"engine-cvec-{Guid.NewGuid():N}.gguf");
        var bytes = File.ReadAllBytes(VectorFile("stories260K.a.cvec.gguf"));
        File.WriteAllBytes(path, bytes[..(bytes.Length - 100)]);
        try
        {
            var act = () => ControlVector.Load(path);
            act.Should().Throw<Formats.ModelFormatException>().Where(e => e.FilePath == path);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void A_file_read_back_holds_what_was_saved_and_files_sum_with_their_strengths()
    {
        var a = ControlVector.Load(VectorFile("stories260K.a.cvec.gguf"));
        var b = ControlVector.Load(VectorFile("stories260K.b.cvec.gguf"), -2f);
        var sum = ControlVector.Sum([a, b]);
        sum.Layers.Should().Equal(1, 2, 3, 4);
        for (int i = 0; i < 64; i++)
        {
            sum.Direction(2)[i].Should().Be(a.Direction(2)[i] + b.Direction(2)[i]);
            sum.Direction(1)[i].Should().Be(a.Direction(1)[i]); // b has no layer 1: it adds nothing there
        }
        b.Direction(4)[0].Should().Be(-2f * ControlVector.Load(VectorFile("stories260K.b.cvec.gguf")).Direction(4)[0]);

        var path = Path.Combine(Path.GetTempPath(), $"engine-cvec-{Guid.NewGuid():N}.gguf");
        try
        {
            sum.Save(path, "llama");
            var back = ControlVector.Load(path);
            back.Layers.Should().Equal(sum.Layers);
            foreach (var layer in sum.Layers) back.Direction(layer).ToArray().Should().Equal(sum.Direction(layer).ToArray());
        }
        finally { File.Delete(path); }

        sum.ForLayers(2, 3).Layers.Should().Equal(2, 3);
        sum.Scale(0.5f).Direction(3)[7].Should().Be(sum.Direction(3)[7] * 0.5f);
        var mismatch = () => ControlVector.Sum([a, ControlVector.Load(VectorFile("fx-llama.a.cvec.gguf"))]);
        mismatch.Should().Throw<ControlVectorException>().Where(e => e.Kind == ControlVectorErrorKind.WidthMismatch && e.FilePath == VectorFile("fx-llama.a.cvec.gguf"));
    }

    [Fact]
    public void Directions_from_arrays_are_checked()
    {
        var ok = ControlVector.FromDirections(new Dictionary<int, float[]> { [3] = [1, 2], [1] = [3, 4] });
        ok.Layers.Should().Equal(1, 3);
        ok.Width.Should().Be(2);
        ((Action)(() => ControlVector.FromDirections(new Dictionary<int, float[]>()))).Should().Throw<ArgumentException>();
        ((Action)(() => ControlVector.FromDirections(new Dictionary<int, float[]> { [0] = [1] }))).Should().Throw<ArgumentException>().WithMessage("*layer 0*");
        ((Action)(() => ControlVector.FromDirections(new Dictionary<int, float[]> { [1] = [1], [2] = [1, 2] }))).Should().Throw<ArgumentException>();
        ((Action)(() => ControlVector.FromDirections(new Dictionary<int, float[]> { [1] = [float.PositiveInfinity] }))).Should().Throw<ArgumentException>();
        ((Action)(() => ok.ForLayers(3, 2))).Should().Throw<ArgumentOutOfRangeException>();
        ((Action)(() => ok.Direction(2))).Should().Throw<ArgumentOutOfRangeException>();
    }
}
