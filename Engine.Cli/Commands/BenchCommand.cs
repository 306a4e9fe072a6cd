using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Benchmarking;

namespace Engine.Cli.Commands;

/// <summary>`engine bench`: prompt (pp) and generation (tg) tokens/s measured the way llama-bench measures
/// them, with the bytes of weights each generated token reads and the share of the machine's memory
/// bandwidth that generation reaches.</summary>
public static class BenchCommand
{
    const string Help = """
        usage: engine bench --model M [-p 128] [-n 64] [-r 3] [-d 0] [--parallel 1] [--kv-type f16] [--profile]
                            [--threads N] [--device D] [--gpu-layers N] [--json]
                            [--sample | --grammar-file F | --json-schema F | --json-object]
          -p N         prompt tokens, fed as one batch (0 skips the test)
          -n N         generated tokens, one decode each (0 skips the test)
          -r N         measured repetitions after one warm-up
          -d D         tokens put in each sequence's KV cache before each test, untimed (llama-bench's depth)
          --parallel N sequences generating together, one token each per step; tg is the sum over them
          --kv-type T  f16 (default, as llama.cpp), f32 or q8_0
          --profile    time each kind of operation (matmul by weight type, attention, norms, sampling)
          --threads N  worker threads (default: all cores)
          --device D   cpu (default), cuda, opencl, auto or ilgpu-cpu
          --gpu-layers N   the first N layers on the device, the rest on the CPU (default all)
          --sample     tg samples each token from the logits (default options) and feeds it, instead of random ids
          --grammar-file F  tg samples under the GBNF grammar in F (mask, sampling and grammar timed with the step)
          --json-schema F   tg samples under the JSON schema in F; --json-object: under "any JSON object"
          --json       {"pp":{"tokens_per_second":..},"tg":{"tokens_per_second":..},...} on stdout
        """ + ModelArguments.GptqHelp;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, new HashSet<string>(ModelArguments.Flags) { "sample", "json-object" });
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        int prompt = cl.Int("p", 128, 0, 1 << 20, alias: "n-prompt");
        int generate = cl.Int("n", 64, 0, 1 << 20, alias: "n-gen");
        int reps = cl.Int("r", 3, 1, 1000, alias: "repetitions");
        int depth = cl.Int("d", 0, 0, 1 << 24, alias: "n-depth");
        int parallel = cl.Int("parallel", 1, 1, 64, alias: "np");
        var kvType = ModelArguments.KvType(cl).ToElementType();
        bool profile = cl.Has("profile");
        bool json = cl.Has("json");
        bool sample = cl.Has("sample");
        string? grammarFile = cl.String("grammar-file");
        string? schemaFile = cl.String("json-schema");
        bool jsonObject = cl.Has("json-object");
        using var model = ModelArguments.Open(cl, required: true);
        cl.RejectUnknown();
        Engine.Grammar.GrammarConstraint? grammar = null;
        if (grammarFile is not null || schemaFile is not null || jsonObject)
        {
            var compile = System.Diagnostics.Stopwatch.StartNew();
            try
            {
                grammar = grammarFile is not null ? Engine.Grammar.GrammarConstraint.FromGbnf(File.ReadAllText(grammarFile), model.Tokenizer)
                    : schemaFile is not null ? Engine.Grammar.GrammarConstraint.FromJsonSchema(File.ReadAllText(schemaFile), model.Tokenizer)
                    : Engine.Grammar.GrammarConstraint.JsonObject(model.Tokenizer);
            }
            catch (GrammarException e) { throw new UsageException(e.Message); }
            Console.Error.WriteLine($"bench: grammar compiled for the vocabulary in {compile.Elapsed.TotalMilliseconds:F1} ms (token trie included)");
        }
        if (prompt == 0 && generate == 0) throw new UsageException("nothing to measure: -p and -n are both 0");
        int ctx = depth + Math.Max(prompt, generate);
        if (ctx > model.Config.TrainedContextLength)
            throw new UsageException($"-d plus -p/-n is {ctx} tokens, more than the model's context of {model.Config.TrainedContextLength}");
        if (parallel > model.Model.MaxBatch)
            throw new UsageException($"--parallel {parallel} is more than the {model.Model.MaxBatch} rows of a step");

        var stages = model.Model.Stages;
        int threads = stages.Select(s => s.Backend).OfType<Engine.Backends.Cpu.CpuBackend>().FirstOrDefault()?.Threads ?? Environment.ProcessorCount;
        long fileBytes = model.FileBytes; // every part of a split GGUF; a folder's safetensors files
        long bytesPerToken = WeightTraffic.BytesPerToken(model.Model.Weights, model.Config);
        string placement = string.Join(" + ", stages.Select(s => stages.Count == 1 ? s.Backend.Name : $"{s.Backend.Name} (layers {s.FirstLayer}-{s.EndLayer - 1})"));
        Console.Error.WriteLine($"bench: {Path.GetFileName(model.Path)} on {placement}, {threads} threads, measuring memory bandwidth...");
        if (model.QuantizedCheckpoint is { } checkpoint) Console.Error.WriteLine($"bench: {checkpoint}");
        // The ceiling of a split model: each stage streams its share of the weights from its own memory.
        double secondsPerToken = 0, hostBandwidth = 0;
        foreach (var stage in stages)
        {
            double stageBandwidth = stage.Backend is IMemoryBandwidth device ? device.MeasureBytesPerSecond()
                : hostBandwidth > 0 ? hostBandwidth : hostBandwidth = MemoryBandwidth.MeasureBytesPerSecond(threads);
            secondsPerToken += WeightTraffic.BytesPerToken(model.Model.Weights, model.Config, stage.FirstLayer, stage.LayerCount) / Math.Max(stageBandwidth, 1);
        }
        double bandwidth = bytesPerToken / secondsPerToken; // the effective figure over all stages
        var result = Benchmark.Run(model.Model, new BenchOptions(prompt, generate, reps) { Depth = depth, Parallel = parallel, KvType = kvType, Profile = profile, Sample = sample, Grammar = grammar },
            progress: message => Console.Error.WriteLine("bench: " + message));

        double ceiling = bandwidth / bytesPerToken;
        if (json)
        {
            var root = new JsonObject
            {
                ["model"] = model.Path,
                ["architecture"] = model.Config.Architecture,
                ["file_bytes"] = fileBytes,
                ["threads"] = threads,
                ["backend"] = placement,
                ["weight_bytes_per_token"] = bytesPerToken,
                ["memory_bandwidth_bytes_per_second"] = Math.Round(bandwidth),
                ["tg_ceiling_tokens_per_second"] = Math.Round(ceiling, 2),
                ["depth"] = depth,
                ["parallel"] = parallel,
                ["kv_type"] = kvType.ToString().ToLowerInvariant(),
            };
            if (model.QuantizedCheckpoint is { } quantized) root["quantized_checkpoint"] = quantized;
            if (result.Prompt is { } pp) root["pp"] = Stat(pp);
            if (result.Generation is { } tg)
            {
                var node = Stat(tg);
                node["bandwidth_share"] = Math.Round(tg.Mean / ceiling, 4);
                if (result.CopiesPerGeneratedToken is { } c)
                    node["host_copies_per_token"] = new JsonObject
                    {
                        ["uploads"] = c.Uploads, ["uploaded_bytes"] = c.UploadedBytes, ["reads"] = c.Reads, ["read_bytes"] = c.ReadBytes,
                    };
                root["tg"] = node;
            }
            Console.WriteLine(root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }

        Console.WriteLine($"| model | size | threads | test | t/s |");
        Console.WriteLine($"| --- | ---: | ---: | ---: | ---: |");
        foreach (var stat in new[] { result.Prompt, result.Generation })
            if (stat is not null)
                Console.WriteLine($"| {Path.GetFileName(model.Path)} | {fileBytes / 1048576.0:F1} MiB | {threads} | {stat.Test} | {stat.Mean:F2} ± {stat.StdDev:F2} |");
        Console.WriteLine();
        if (model.QuantizedCheckpoint is { } described) Console.WriteLine($"checkpoint: {described}");
        Console.WriteLine($"weights read per generated token: {bytesPerToken / 1048576.0:F1} MiB");
        Console.WriteLine($"memory bandwidth ({(stages.Count > 1 ? $"effective over {stages.Count} stages" : stages[0].Backend is IMemoryBandwidth ? "device" : $"{threads} threads")}): {bandwidth / 1e9:F1} GB/s -> generation ceiling {ceiling:F1} tok/s");
        if (result.Generation is { } g)
            Console.WriteLine(parallel > 1
                ? $"{parallel} sequences read the weights once per step: {g.Mean / parallel:F1} tok/s each, {g.Mean / ceiling:F1}x the one-sequence ceiling"
                : $"generation reaches {100 * g.Mean / ceiling:F0}% of that ceiling");
        foreach (var stat in new[] { result.Prompt, result.Generation })
            if (stat?.Operations is { } operations)
            {
                double total = operations.Sum(o => o.Seconds);
                Console.WriteLine();
                Console.WriteLine($"{stat.Test}: time per repetition by operation ({total * 1000:F1} ms in operations, {stat.Seconds.Average() * 1000:F1} ms measured)");
                Console.WriteLine("| operation | ms | share | calls |");
                Console.WriteLine("| --- | ---: | ---: | ---: |");
                foreach (var (operation, seconds, calls) in operations)
                    Console.WriteLine($"| {operation} | {seconds * 1000:F2} | {100 * seconds / total:F1}% | {calls} |");
            }
        if (result.CopiesPerGeneratedToken is { } copies)
            Console.WriteLine($"host-device copies per generated token: {copies}");
        return 0;
    }

    static JsonObject Stat(BenchStat s)
    {
        var node = new JsonObject
        {
            ["test"] = s.Test,
            ["tokens"] = s.Tokens,
            ["tokens_per_second"] = Math.Round(s.Mean, 3),
            ["stddev"] = Math.Round(s.StdDev, 3),
            ["samples_tokens_per_second"] = new JsonArray([.. s.TokensPerSecond.Select(v => (JsonNode)Math.Round(v, 3))]),
        };
        if (s.Operations is { } operations)
            node["operations"] = new JsonArray([.. operations.Select(o => (JsonNode)new JsonObject
            {
                ["operation"] = o.Operation, ["milliseconds"] = Math.Round(o.Seconds * 1000, 3), ["calls"] = o.Calls,
            })]);
        return node;
    }
}
