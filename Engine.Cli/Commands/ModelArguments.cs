using System.Globalization;
using Engine.Gpu;
using Engine.Models;

namespace Engine.Cli.Commands;

/// <summary>Options shared by the commands that load a model.</summary>
internal static class ModelArguments
{
    public static readonly HashSet<string> Flags = ["json", "help", "h", "ignore-eos", "all", "no-bos", "verbose", "no-think", "no-repack", "profile"];

    /// <summary>Options that may be given several times, as in llama.cpp.</summary>
    public static readonly HashSet<string> Repeatable = ["control-vector", "control-vector-scaled"];

    /// <summary>Options that take two values, as in llama.cpp.</summary>
    public static readonly HashSet<string> Pairs = ["control-vector-scaled", "control-vector-layer-range"];

    /// <summary>--model, or the shipped default model when the command allows it; the file or folder must exist.</summary>
    static string ModelPath(CommandLine cl, bool required)
    {
        var path = cl.String("model", "m");
        if (path is null)
        {
            if (required) throw new UsageException("--model is required");
            path = EntryPoint.DefaultModelPath();
        }
        return Resolve(path);
    }

    /// <summary>A model file or folder as given, else a pulled name (owner/repo[:QUANT]) looked up in the store.</summary>
    /// <exception cref="UsageException">It is neither.</exception>
    public static string Resolve(string pathOrName)
    {
        if (File.Exists(pathOrName) || Directory.Exists(pathOrName)) return pathOrName;
        if (Store.ModelName.TryParse(pathOrName, out var name, out _))
        {
            var store = Store.ModelStore.Default();
            return store.ModelPath(name!) ?? throw new UsageException(
                $"no such model file or folder: {pathOrName}, and it is not in the model store {store.Root} (get it with 'engine pull {pathOrName}')");
        }
        throw new UsageException($"no such model file or folder: {pathOrName}");
    }

    public static LoadedModel Open(CommandLine cl, bool required)
    {
        var path = ModelPath(cl, required);
        int threads = cl.Int("threads", 0, 0, 1024, alias: "t");
        bool repack = !cl.Has("no-repack");
        var stages = DeviceSelection.StageFactory(Device(cl), threads, GpuLayers(cl), Console.Error, repack);
        return LoadedModel.Open(path, new ModelOptions
        {
            Threads = threads, StageFactory = stages, RepackWeights = repack, QuantizedCheckpointFloatActivations = FloatActivations(cl),
            Progress = message => Console.Error.WriteLine("engine: " + message),
        });
    }

    /// <summary>The model through the library's public API (run, chat): --model (default: the shipped stories260K),
    /// --device, --gpu-layers, --threads, --no-repack, --template; loading steps reported on stderr.</summary>
    public static Model Load(CommandLine cl, bool required)
    {
        var path = ModelPath(cl, required);
        var template = cl.String("template");
        if (template is not null && Engine.Chat.ChatTemplates.ByName(template) is null)
            throw new UsageException($"unknown template '{template}': use {Engine.Chat.ChatTemplates.Names}");
        return Model.Load(path, LoadOptions(cl, template) with { Progress = new Progress() });
    }

    /// <summary>The model at --model (or the default) through the public API with options the command built.</summary>
    public static Model Load(CommandLine cl, bool required, ModelLoadOptions options) =>
        Model.Load(ModelPath(cl, required), options with { Progress = new Progress() });

    /// <summary>What a model is loaded with: --device, --gpu-layers, --threads, --no-repack, --ctx, --kv-type,
    /// --kv-budget, --parallel (and the template override, checked by the caller).</summary>
    public static ModelLoadOptions LoadOptions(CommandLine cl, string? template) => SizingOptions(cl) with
    {
        Device = GpuDevices.For(Device(cl)),
        GpuLayers = GpuLayers(cl),
        ChatTemplate = template,
        ChatTemplateText = ChatTemplateFile(cl),
        ControlVector = ControlVector(cl),
    };

    /// <summary>What sizes a loaded model's work and KV cache: --threads, --no-repack, --ctx, --kv-type, --kv-budget,
    /// --parallel (the part of <see cref="LoadOptions"/> that `engine estimate` takes too).</summary>
    public static ModelLoadOptions SizingOptions(CommandLine cl) => new()
    {
        Threads = cl.Int("threads", 0, 0, 1024, alias: "t"),
        RepackWeights = !cl.Has("no-repack"),
        QuantizedCheckpointFloatActivations = FloatActivations(cl),
        ContextLength = cl.Int("ctx", 0, 1, 1 << 24, alias: "c"),
        KvCacheType = KvType(cl),
        KvCacheBytes = cl.Size("kv-budget") ?? 0,
        ParallelSequences = cl.Int("parallel", 4, 1, 4096, alias: "np"),
    };

    /// <summary>The control-vector options, as the help texts list them.</summary>
    public const string ControlVectorHelp = """
          --control-vector F                  add a llama.cpp control vector to the model's layer outputs (repeatable)
          --control-vector-scaled F S         the same, its directions multiplied by S (repeatable; all are summed)
          --control-vector-layer-range A B    steer layers A to B only, both included (default: every layer)

        """;

    /// <summary>--control-vector F and --control-vector-scaled F S (each repeatable; the files are summed in the order
    /// given, as llama.cpp does) and --control-vector-layer-range A B (both included; as in llama.cpp, A of 0 or less
    /// means the first layer and B of 0 or less the last). Null without any control vector. The files are read here,
    /// so a bad one is reported before the model loads; whether it fits the model is checked when the model loads.</summary>
    public static ControlVector? ControlVector(CommandLine cl)
    {
        var files = cl.InOrder("control-vector", "control-vector-scaled");
        var range = cl.Pair("control-vector-layer-range");
        if (files.Count == 0)
        {
            if (range is not null) throw new UsageException("--control-vector-layer-range needs --control-vector or --control-vector-scaled");
            return null;
        }
        var vectors = new List<ControlVector>();
        foreach (var (option, values) in files)
        {
            var path = values[0];
            if (!File.Exists(path)) throw new UsageException($"no such control vector file: {path}");
            float strength = 1;
            if (values.Length == 2 && (!float.TryParse(values[1], NumberStyles.Float, CultureInfo.InvariantCulture, out strength) || !float.IsFinite(strength)))
                throw new UsageException($"--{option} {path} S: the strength S must be a number, got '{values[1]}'");
            vectors.Add(Engine.ControlVector.Load(path, strength));
        }
        var vector = Engine.ControlVector.Sum(vectors);
        if (range is not { } given) return vector;
        string text = $"--control-vector-layer-range {given.First} {given.Second}";
        int first = RangeEnd(given.First, text), last = RangeEnd(given.Second, text);
        // The last layer is not known before the model loads; a direction beyond it is refused then, so "every layer
        // from A on" is as good as "A to the last".
        first = first <= 0 ? 1 : first;
        last = last <= 0 ? int.MaxValue : last;
        if (last < first) throw new UsageException($"{text} is empty: B is below A");
        var kept = vector.ForLayers(first, last);
        if (kept.Layers.Count == 0)
            throw new UsageException($"{text} keeps none of the control vector's layers ({string.Join(", ", vector.Layers)})");
        return kept;
    }

    static int RangeEnd(string text, string option) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int layer) ? layer
            : throw new UsageException($"{option}: A and B must be layer numbers, got '{text}'");

    /// <summary>Load options for a command that runs one pass of `context` tokens at a time in caches of its own
    /// (perplexity, imatrix): --device, --gpu-layers, --threads, --no-repack; the sessions' cache holds one window.</summary>
    public static ModelLoadOptions SinglePassOptions(CommandLine cl, int context) => new()
    {
        Device = GpuDevices.For(Device(cl)),
        GpuLayers = GpuLayers(cl),
        Threads = cl.Int("threads", 0, 0, 1024, alias: "t"),
        RepackWeights = !cl.Has("no-repack"),
        QuantizedCheckpointFloatActivations = FloatActivations(cl),
        ContextLength = context,
        ParallelSequences = 1,
    };

    /// <summary>A UTF-8 text file's contents, without one trailing newline (as llama.cpp's tools read --file).</summary>
    /// <exception cref="UsageException">The file is missing or not UTF-8.</exception>
    public static string ReadTextFile(string path)
    {
        if (!File.Exists(path)) throw new UsageException($"no such file: {path}");
        string text;
        try { text = File.ReadAllText(path, new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true)); }
        catch (System.Text.DecoderFallbackException e) { throw new UsageException($"{path} is not UTF-8 text ({e.Message})"); }
        return text.EndsWith('\n') ? text[..^1] : text;
    }

    /// <summary>Largest --chat-template-file read (real templates are a few KiB; the longest known are under 64 KiB).</summary>
    const long MaxTemplateBytes = 1 << 20;

    /// <summary>--chat-template-file F: a Jinja template run instead of the model's own (and instead of --template).</summary>
    public static string? ChatTemplateFile(CommandLine cl)
    {
        if (cl.String("chat-template-file") is not { } path) return null;
        var file = new FileInfo(path);
        if (!file.Exists) throw new UsageException($"no such chat template file: {path}");
        if (file.Length > MaxTemplateBytes) throw new UsageException($"{path} is {file.Length} bytes: a chat template file may hold at most {MaxTemplateBytes}");
        var text = File.ReadAllText(path, new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true));
        try { _ = new Engine.Chat.JinjaChatTemplate(text, null, null); }
        catch (ChatTemplateException e) { throw new UsageException($"{path}: {e.Message}"); }
        return text;
    }

    /// <summary>The chat-template options, as the help texts list them.</summary>
    public const string TemplateHelp = """
          --chat-template-file F   a Jinja chat template to run instead of the model's own
          --template NAME          a built-in format instead: chatml, qwen2, qwen3, llama3, llama2, deepseek-r1, deepseek-v3

        """;

    /// <summary>--gptq-activations q8|f32: how a GPTQ / AWQ folder's 4-bit matmuls take their input. q8 (the default)
    /// quantizes it to 8-bit blocks as the GGUF kernels do (fast); f32 keeps it in float (exact: within 1e-3 of the
    /// float64 reference, where q8 is held to its own 8-bit tolerance). Other models ignore it.</summary>
    public static bool FloatActivations(CommandLine cl) => cl.String("gptq-activations")?.ToLowerInvariant() switch
    {
        null or "q8" => false,
        "f32" => true,
        var other => throw new UsageException($"--gptq-activations must be q8 (fast, the default) or f32 (exact), got '{other}'"),
    };

    /// <summary>The GPTQ / AWQ activation option, as the help texts list it.</summary>
    public const string GptqHelp = """
          --gptq-activations q8|f32   GPTQ / AWQ folders: 4-bit matmuls with 8-bit activations (q8, default, fast)
                                      or float ones (f32, exact)

        """;

    /// <summary>The KV-cache options, as the help texts list them.</summary>
    public const string KvHelp = """
          --ctx N         most tokens one conversation holds (default: the model's trained context, at most 4096)
          --kv-type T     f16 (default, as llama.cpp), f32 (exact) or q8_0 (half of f16's memory)
          --kv-budget S   KV cache shared by all sequences, e.g. 4GiB (default: --parallel full contexts, capped by free memory)
          --parallel N    sequences of the full context the default KV cache is sized for (default 4)

        """;

    /// <summary>--kv-type f16|f32|q8_0 (default f16, as llama.cpp).</summary>
    public static KvCacheType KvType(CommandLine cl) => cl.String("kv-type", "ctk")?.ToLowerInvariant() switch
    {
        null or "f16" => KvCacheType.F16,
        "f32" => KvCacheType.F32,
        "q8_0" => KvCacheType.Q8_0,
        var other => throw new UsageException($"--kv-type must be f16, f32 or q8_0, got '{other}'"),
    };

    /// <summary>Prints each loading step on stderr as it happens (not through a synchronization context, as
    /// System.Progress would).</summary>
    sealed class Progress : IProgress<ModelLoadProgress>
    {
        public void Report(ModelLoadProgress value)
        {
            if (value.Fraction is null) Console.Error.WriteLine("engine: " + value.Message);
        }
    }

    /// <summary>Sampling and stopping options from the command line (llama.cpp's defaults).</summary>
    public static GenerateOptions Generate(CommandLine cl, int vocabularySize)
    {
        var d = new GenerateOptions();
        var options = new GenerateOptions
        {
            Temperature = (float)cl.Double("temperature", d.Temperature, 0, 100),
            TopK = cl.Int("top-k", d.TopK, 0, int.MaxValue),
            TopP = (float)cl.Double("top-p", d.TopP, 0, 1),
            MinP = (float)cl.Double("min-p", d.MinP, 0, 1),
            RepetitionPenalty = (float)cl.Double("repeat-penalty", 1, 0, 100),
            PresencePenalty = (float)cl.Double("presence-penalty", 0, -100, 100),
            FrequencyPenalty = (float)cl.Double("frequency-penalty", 0, -100, 100),
            PenaltyLastN = cl.Int("repeat-last-n", 64, 0, 1 << 20),
            Seed = cl.ULong("seed"),
            IgnoreEndOfGeneration = cl.Has("ignore-eos"),
            StopSequences = cl.String("stop") is { } stop ? [stop] : [],
            Grammar = cl.String("grammar-file") is { } grammar ? ReadSmallText(grammar, "grammar") : cl.String("grammar"),
            JsonSchema = JsonSchema(cl),
        };
        options.ToSampler(vocabularySize); // a bad value is reported before the model runs
        return options;
    }

    /// <summary>--json-schema TEXT or --json-schema-file F (llama.cpp's -j and -jf): the output must be a valid instance.</summary>
    static System.Text.Json.JsonElement? JsonSchema(CommandLine cl)
    {
        var text = cl.String("json-schema-file") is { } file ? ReadSmallText(file, "JSON schema") : cl.String("json-schema", "j");
        if (text is null) return null;
        try
        {
            using var document = System.Text.Json.JsonDocument.Parse(text);
            return document.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object ? document.RootElement.Clone()
                : throw new UsageException("--json-schema must be a JSON object");
        }
        catch (System.Text.Json.JsonException e) { throw new UsageException($"--json-schema is not JSON: {e.Message}"); }
    }

    /// <summary>A grammar or schema file (at most 1 MiB; real ones are a few KiB).</summary>
    static string ReadSmallText(string path, string what)
    {
        var file = new FileInfo(path);
        if (!file.Exists) throw new UsageException($"no such {what} file: {path}");
        if (file.Length > MaxTemplateBytes) throw new UsageException($"{path} is {file.Length} bytes: a {what} file may hold at most {MaxTemplateBytes}");
        return File.ReadAllText(path);
    }

    /// <summary>The constrained-output options, as the help texts list them.</summary>
    public const string GrammarHelp = """
          --grammar-file F         a GBNF grammar (llama.cpp's) the output must match (--grammar TEXT inline)
          --json-schema-file F     a JSON Schema the output must be valid for (--json-schema TEXT inline)

        """;

    /// <summary>--gpu-layers N|all: how many of the first layers run on the device (default all; with --device auto,
    /// as many as fit).</summary>
    public static int? GpuLayers(CommandLine cl)
    {
        var text = cl.String("gpu-layers", "ngl");
        if (text is null || text.Equals("all", StringComparison.OrdinalIgnoreCase)) return null;
        return int.TryParse(text, out int n) && n >= 0 ? n
            : throw new UsageException($"--gpu-layers must be a number of layers (0 or more) or 'all', got '{text}'");
    }

    /// <summary>--device: where the model runs (default cpu).</summary>
    public static DeviceChoice Device(CommandLine cl)
    {
        var text = cl.String("device") ?? "cpu";
        return DeviceSelection.TryParse(text, out var choice) ? choice
            : throw new UsageException($"--device must be {DeviceSelection.Names}, got '{text}'");
    }


    /// <summary>--ctx: defaults to what the prompt and generation need, capped by the trained context.</summary>
    public static int Context(CommandLine cl, LoadedModel model, int needed) => Context(cl, model.Config.TrainedContextLength, needed);

    /// <summary>--ctx: defaults to what the prompt and generation need, capped by the trained context.</summary>
    public static int Context(CommandLine cl, int trained, int needed)
    {
        int ctx = cl.Int("ctx", Math.Min(trained, Math.Max(needed, Math.Min(trained, 4096))), 1, 1 << 24, alias: "c");
        return ctx;
    }

    /// <summary>The prompt's tokens: --tokens as given (each within the vocabulary), or the text tokenized by `tokenize`.</summary>
    public static int[] Prompt(CommandLine cl, int vocabularySize, string? text, Func<string, int[]> tokenize)
    {
        var tokens = cl.String("tokens");
        if (tokens is not null)
        {
            if (text is not null) throw new UsageException("give either a prompt text or --tokens, not both");
            var ids = CommandLine.ParseTokens(tokens);
            foreach (var id in ids)
                if (id >= vocabularySize) throw new UsageException($"token id {id} is outside the vocabulary of {vocabularySize}");
            return ids;
        }
        return tokenize(text ?? "");
    }
}
