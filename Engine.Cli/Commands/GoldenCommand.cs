using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Gpu;
using Engine.Models;

namespace Engine.Cli.Commands;

/// <summary>`engine golden` (diagnostic, not in the usage text): runs a fixture's golden token sequence through the
/// model and compares every row of logits and the greedy continuation with llama.cpp's golden outputs
/// (NAME.golden.json + NAME.logits.f32, see ../shared/fixtures/README.md). It exists for tools/gpu-check.sh, which
/// checks the GPU backend on a machine without the .NET SDK and so without the test runner.</summary>
/// <remarks>Two bounds are reported. The fixture bound is the fixtures README's (F32 max|diff| 1e-3 and every token
/// equal; F16/BF16 2e-2, every top token, the first 8 greedy tokens; quantized NMSE 5e-4, top token at 21 or more
/// of 24, the first greedy token). The device bound is what docs/gpu.md documents for the GPU backend, whose kernels
/// keep activations in float32 where llama.cpp rounds them: BF16 6e-2; quantized NMSE 1e-3 (5e-2 for a mixture of
/// experts, whose router choices flip on near ties) with the first greedy token reported but not required.
/// Verdict "pass" meets the fixture bound, "pass-device" only the device bound, "FAIL" neither (exit code 3).</remarks>
internal static class GoldenCommand
{
    const string Help = """
        usage: engine golden --model M.gguf --golden M.golden.json [--device D] [--gpu-layers N] [--json]
               engine golden --fixtures FOLDER [--only NAME,NAME] [--device D] [--json]
          diagnostic: feeds the golden file's tokens as one batch, then generates its greedy tokens, and compares
          the logits and tokens with llama.cpp's (NAME.logits.f32 beside the golden file). Prints one line
          (or one JSON object with --json); exit code 0 when within bounds, 3 when not.
          --fixtures checks every NAME.gguf with NAME.golden.json in FOLDER (or those --only names) on one device,
          a line each as it finishes; a model that cannot be checked is reported as ERROR and the others go on.
        """;

    /// <summary>Exit code of a comparison outside both bounds (1 and 2 are taken by bad models and command lines).</summary>
    public const int OutsideBounds = 3;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, ModelArguments.Flags);
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        bool json = cl.Has("json");
        var folder = cl.String("fixtures");
        if (folder is null)
        {
            var goldenPath = cl.String("golden") ?? throw new UsageException("give --model M --golden M.golden.json, or --fixtures FOLDER");
            var golden = GoldenFile.Read(goldenPath);
            using var model = ModelArguments.Open(cl, required: true);
            cl.RejectUnknown();
            return Report(Check(model, golden, goldenPath), json).Verdict == "FAIL" ? OutsideBounds : 0;
        }

        if (cl.String("model", "m") is not null || cl.String("golden") is not null)
            throw new UsageException("--fixtures checks every model of a folder: give it without --model and --golden");
        if (!Directory.Exists(folder)) throw new UsageException($"no such fixtures folder: {folder}");
        var only = cl.String("only")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var names = Directory.GetFiles(folder, "*.golden.json").Select(f => Path.GetFileName(f)[..^".golden.json".Length])
            .Where(n => File.Exists(Path.Combine(folder, n + ".gguf")))
            .Where(n => only is null || only.Contains(n, StringComparer.Ordinal))
            .Order(StringComparer.Ordinal).ToList();
        if (only?.FirstOrDefault(n => !names.Contains(n)) is { } missing)
            throw new UsageException($"--only names {missing}, but {folder} has no {missing}.gguf with {missing}.golden.json");
        if (names.Count == 0) throw new UsageException($"{folder} holds no NAME.gguf with NAME.golden.json");
        var choice = ModelArguments.Device(cl);
        int threads = cl.Int("threads", 0, 0, 1024, alias: "t");
        cl.RejectUnknown();

        // One device for every model, so ILGPU compiles each kernel once (its context caches them), not once per model.
        using var device = DeviceSelection.OpenForDiagnostics(choice);
        int failures = 0;
        foreach (var name in names)
        {
            var goldenPath = Path.Combine(folder, name + ".golden.json");
            try
            {
                var golden = GoldenFile.Read(goldenPath);
                using var model = LoadedModel.Open(Path.Combine(folder, name + ".gguf"), new ModelOptions
                {
                    Threads = threads,
                    StageFactory = device is null ? null : (config, _) => [new LayerStage(new GpuBackend(device, ownsDevice: false), 0, config.LayerCount)],
                });
                if (Report(Check(model, golden, goldenPath), json).Verdict == "FAIL") failures++;
            }
            catch (Exception e) when (e is UsageException or Engine.Formats.ModelFormatException or IOException or InvalidOperationException
                                          or NotSupportedException or ArgumentException)
            {
                // One broken fixture (a weight type without device kernels, say) must not hide the others' results.
                failures++;
                var message = $"{e.GetType().Name}: {e.Message}";
                if (json) Console.WriteLine(new JsonObject { ["model"] = name + ".gguf", ["verdict"] = "ERROR", ["why"] = message }.ToJsonString(JsonOptions));
                else Console.WriteLine($"{name}.gguf: ERROR {message}");
            }
            Console.Out.Flush();
        }
        return failures > 0 ? OutsideBounds : 0;
    }

    static readonly JsonSerializerOptions JsonOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>One model against its golden file, timed.</summary>
    static (LoadedModel Model, GoldenFile Golden, Comparison Result, double Seconds) Check(LoadedModel model, GoldenFile golden, string goldenPath)
    {
        if (model.Config.VocabSize != golden.Vocab)
            throw new UsageException($"{goldenPath} has logits over {golden.Vocab} tokens but the model's vocabulary has {model.Config.VocabSize}: " +
                                     "give the golden file made for this model");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var result = Compare(model.Model, golden, WeightClassOf(model.Path), model.Config.ExpertCount > 0);
        return (model, golden, result, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Prints one line (or one JSON object) for a checked model and returns its comparison.</summary>
    static Comparison Report((LoadedModel Model, GoldenFile Golden, Comparison Result, double Seconds) check, bool json)
    {
        var (model, golden, result, seconds) = check;
        var device = string.Join(" + ", model.Model.Stages.Select(s => s.Backend.Name));
        if (json)
        {
            var node = new JsonObject
            {
                ["model"] = Path.GetFileName(model.Path),
                ["device"] = device,
                ["weights"] = result.Weights.ToString(),
                ["verdict"] = result.Verdict,
                ["max_abs_diff"] = Finite(result.MaxAbsDiff),
                ["nmse"] = Finite(result.Nmse),
                ["top_equal"] = result.SameTop,
                ["rows"] = golden.Rows,
                ["greedy_equal_prefix"] = result.GreedyPrefix,
                ["greedy_count"] = golden.Greedy.Length,
                ["greedy"] = new JsonArray([.. result.Greedy.Select(t => (JsonNode)t)]),
                ["seconds"] = Math.Round(seconds, 3),
                ["why"] = result.Why,
            };
            Console.WriteLine(node.ToJsonString(JsonOptions));
        }
        else
        {
            var why = result.Why.Length > 0 ? "; " + result.Why : "";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{Path.GetFileName(model.Path)} on {device}: {result.Verdict} ({result.Weights}) max|diff| {result.MaxAbsDiff:0.00E+00}, NMSE {result.Nmse:0.00E+00}, top token equal at {result.SameTop}/{golden.Rows}, greedy equal for {result.GreedyPrefix}/{golden.Greedy.Length}, {seconds:F1} s{why}"));
        }
        return result;
    }

    /// <summary>JSON has no infinity (a NaN in the logits is reported as infinite): null stands for it.</summary>
    static JsonNode? Finite(double value) => double.IsFinite(value) ? value : null;

    /// <summary>The tolerance class of a fixture, from its file name as the fixtures name them (fx-llama-Q4_K_M.gguf).</summary>
    public enum WeightClass { F32, F16, BF16, Quantized }

    public static WeightClass WeightClassOf(string modelPath)
    {
        var name = Path.GetFileNameWithoutExtension(modelPath);
        return name.EndsWith("-F32", StringComparison.OrdinalIgnoreCase) ? WeightClass.F32
            : name.EndsWith("-BF16", StringComparison.OrdinalIgnoreCase) ? WeightClass.BF16
            : name.EndsWith("-F16", StringComparison.OrdinalIgnoreCase) ? WeightClass.F16
            : WeightClass.Quantized;
    }

    /// <summary>A golden case: the tokens fed, every row of logits after them, the greedy continuation.</summary>
    public sealed record GoldenFile(int[] Tokens, int Vocab, float[] Logits, int[] Greedy)
    {
        public int Rows => Tokens.Length;

        /// <exception cref="UsageException">The file or its logits file is missing or malformed.</exception>
        public static GoldenFile Read(string path)
        {
            if (!File.Exists(path)) throw new UsageException($"no such golden file: {path}");
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(path));
                var root = doc.RootElement;
                int[] Ints(string name) => [.. root.GetProperty(name).EnumerateArray().Select(e => e.GetInt32())];
                var tokens = Ints("tokens");
                int vocab = root.GetProperty("n_vocab").GetInt32();
                var logitsPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, root.GetProperty("logits_file").GetString()!);
                if (!File.Exists(logitsPath)) throw new UsageException($"{path} names the logits file {logitsPath}, which does not exist");
                var bytes = File.ReadAllBytes(logitsPath);
                if (tokens.Length == 0 || bytes.Length != (long)tokens.Length * vocab * sizeof(float))
                    throw new UsageException($"{logitsPath} holds {bytes.Length} bytes, but {tokens.Length} rows of {vocab} float32 logits take " +
                                             $"{(long)tokens.Length * vocab * sizeof(float)}: the golden file and its logits do not belong together");
                return new GoldenFile(tokens, vocab, MemoryMarshal.Cast<byte, float>(bytes).ToArray(), Ints("greedy_tokens"));
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                throw new UsageException($"{path} is not a golden file (tokens, n_vocab, logits_file, greedy_tokens): {e.Message}");
            }
        }
    }

    /// <summary>What one comparison found, and its verdict against both bounds.</summary>
    public sealed record Comparison(WeightClass Weights, double MaxAbsDiff, double Nmse, int SameTop, int GreedyPrefix, int[] Greedy, string Verdict, string Why);

    /// <summary>Feeds the golden tokens as one batch (every row compared), then generates the greedy tokens one decode
    /// step at a time in the same KV cache, and judges the result.</summary>
    public static Comparison Compare(Llama model, GoldenFile golden, WeightClass weights, bool mixtureOfExperts)
    {
        int vocab = golden.Vocab;
        using var cache = model.CreateCache(golden.Rows + golden.Greedy.Length);
        var logits = new float[golden.Rows * vocab];
        model.Forward(golden.Tokens, 0, cache, logits);

        double maxAbsDiff = 0, errorSquares = 0, goldenSquares = 0;
        int sameTop = 0;
        for (int row = 0; row < golden.Rows; row++)
        {
            var ours = logits.AsSpan(row * vocab, vocab);
            var theirs = golden.Logits.AsSpan(row * vocab, vocab);
            for (int i = 0; i < vocab; i++)
            {
                double d = (double)ours[i] - theirs[i];
                maxAbsDiff = Math.Max(maxAbsDiff, Math.Abs(d));
                errorSquares += d * d;
                goldenSquares += (double)theirs[i] * theirs[i];
            }
            if (Argmax(ours) == Argmax(theirs)) sameTop++;
        }
        double nmse = goldenSquares == 0 ? errorSquares : errorSquares / goldenSquares;
        if (double.IsNaN(maxAbsDiff) || double.IsNaN(nmse)) maxAbsDiff = nmse = double.PositiveInfinity;

        var greedy = new int[golden.Greedy.Length];
        var last = logits.AsSpan((golden.Rows - 1) * vocab, vocab).ToArray();
        for (int i = 0; i < greedy.Length; i++)
        {
            greedy[i] = Argmax(last);
            if (i + 1 < greedy.Length) model.Forward([greedy[i]], golden.Rows + i, cache, last);
        }
        int prefix = 0;
        while (prefix < greedy.Length && greedy[prefix] == golden.Greedy[prefix]) prefix++;

        var (verdict, why) = Judge(weights, mixtureOfExperts, maxAbsDiff, nmse, sameTop, golden.Rows, prefix, greedy.Length);
        return new Comparison(weights, maxAbsDiff, nmse, sameTop, prefix, greedy, verdict, why);
    }

    /// <summary>"pass" within the fixtures README's bound, "pass-device" within docs/gpu.md's bound for the GPU backend
    /// only, else "FAIL"; why names the first bound missed.</summary>
    public static (string Verdict, string Why) Judge(WeightClass weights, bool mixtureOfExperts, double maxAbsDiff, double nmse,
                                                     int sameTop, int rows, int greedyPrefix, int greedyCount)
    {
        var fixture = Miss(weights, maxAbsDiff, nmse, sameTop, rows, greedyPrefix, greedyCount,
                           maxDiff: weights == WeightClass.F32 ? 1e-3 : 2e-2, maxNmse: 5e-4, quantizedNeedsFirstGreedy: true);
        if (fixture is null) return ("pass", "");
        var device = Miss(weights, maxAbsDiff, nmse, sameTop, rows, greedyPrefix, greedyCount,
                          maxDiff: weights switch { WeightClass.F32 => 1e-3, WeightClass.BF16 => 6e-2, _ => 2e-2 },
                          maxNmse: mixtureOfExperts ? 5e-2 : 1e-3, quantizedNeedsFirstGreedy: false);
        return device is null ? ("pass-device", "fixture bound missed: " + fixture) : ("FAIL", device);
    }

    static string? Miss(WeightClass weights, double maxAbsDiff, double nmse, int sameTop, int rows, int greedyPrefix, int greedyCount,
                        double maxDiff, double maxNmse, bool quantizedNeedsFirstGreedy)
    {
        static string F(double v) => v.ToString("0.###E+0", CultureInfo.InvariantCulture);
        if (weights == WeightClass.Quantized)
        {
            if (!(nmse <= maxNmse)) return $"NMSE {F(nmse)} > {F(maxNmse)}";
            if (sameTop < Math.Min(21, rows)) return $"top token equal at {sameTop}/{rows} < 21";
            if (quantizedNeedsFirstGreedy && greedyPrefix < Math.Min(1, greedyCount)) return "first greedy token differs";
            return null;
        }
        int greedyNeeded = weights == WeightClass.F32 ? greedyCount : Math.Min(8, greedyCount);
        if (!(maxAbsDiff <= maxDiff)) return $"max|diff| {F(maxAbsDiff)} > {F(maxDiff)}";
        if (sameTop < rows) return $"top token equal at {sameTop}/{rows}";
        if (greedyPrefix < greedyNeeded) return $"greedy tokens equal for {greedyPrefix}, {greedyNeeded} needed";
        return null;
    }

    static int Argmax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }
}
