using Engine.Cli;
using Engine.Cli.Commands;
using Engine.Cli.Store;
using Engine.Formats;

return EntryPoint.Run(args);

namespace Engine.Cli
{
    /// <summary>The `engine` command. Every failure a user can cause prints one line on stderr (what is wrong,
    /// where, what to do) and exits non-zero: 1 for a bad model or request, 2 for a bad command line.</summary>
    public static class EntryPoint
    {
        public const string Usage = """
            usage: engine <command> [options]
              inspect FILE_OR_FOLDER [--json]           show format, hyperparameters, tokenizer, metadata, tensors
              run [PROMPT] [--model M] [-n N] [...]     generate text (default model: models/stories260K.gguf)
              chat --model M                            interactive chat with the model's template
              logits --model M (--text T | --tokens "1 2 3") [--all] --out FILE
              tokenize --model M --text T               print token ids and pieces
              perplexity --model M --file F [--ctx 512] a text's perplexity, as llama-perplexity measures it
              imatrix --model M --file F [-o F.gguf]    importance matrix for quantize --imatrix, as llama-imatrix
              trace --model M --text T --hooks P --out F.npz  save intermediates (l_out, kq_soft_max, ...) for numpy/torch
              quantize IN OUT TYPE [--imatrix F]        llama-quantize's types and mixes (Q4_K_M, IQ4_XS...), same bytes
              bench --model M [-p 128] [-n 64] [-r 3]   prompt and generation tokens/s, like llama-bench
              devices                                   list the accelerators --device can use
              serve [--model M ...] [--port 11434]      OpenAI- and Ollama-compatible HTTP server
              template [--template-file F] < case.json  render a Jinja chat template as transformers does
              pull [modelscope:]OWNER/REPO[:QUANT]      download a GGUF (or safetensors) model from Hugging Face into the store
              list                                      the pulled models
              rm OWNER/REPO[:QUANT]                     delete a pulled model
              convert HF_FOLDER OUT.gguf [--type F16]   a Hugging Face safetensors folder to GGUF (F32, F16, BF16; GPTQ/AWQ to Q4_0)
              estimate --model M|REPO[:QUANT] [--ctx N]  memory by part and expected speed, from the GGUF header only
            run, chat, logits, bench, perplexity and imatrix take --device cpu|cuda|opencl|auto (default cpu) and --gpu-layers N|all
            and --no-repack (the CPU backend then reads Q4_K, Q6_K, Q4_0, F16 and BF16 matrices in place instead of repacking them at load)
            and, with a GPTQ / AWQ folder, --gptq-activations q8|f32 (8-bit activations, the fast default, or float ones, exact)
            run, chat, logits and serve take llama.cpp's control vectors: --control-vector F, --control-vector-scaled F S
            (both repeatable, summed) and --control-vector-layer-range A B
            run 'engine <command> --help' for the options of a command
            """;

        public static int Run(string[] args)
        {
            if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
            {
                Console.Out.WriteLine(Usage);
                return args.Length == 0 ? 2 : 0;
            }
            try
            {
                var rest = args.Skip(1).ToArray();
                return args[0] switch
                {
                    "inspect" => InspectCommand.Run(rest),
                    "run" => RunCommand.Run(rest),
                    "logits" => LogitsCommand.Run(rest),
                    "tokenize" => TokenizeCommand.Run(rest),
                    "perplexity" => PerplexityCommand.Run(rest),
                    "imatrix" => ImatrixCommand.Run(rest),
                    "quantize" => QuantizeCommand.Run(rest),
                    "trace" => TraceCommand.Run(rest),
                    "chat" => ChatCommand.Run(rest),
                    "bench" => BenchCommand.Run(rest),
                    "devices" => DevicesCommand.Run(rest),
                    "serve" => ServeCommand.Run(rest),
                    "template" => TemplateCommand.Run(rest),
                    "pull" => PullCommand.Run(rest),
                    "list" => ListCommand.Run(rest),
                    "rm" => RmCommand.Run(rest),
                    "convert" => ConvertCommand.Run(rest),
                    "estimate" => EstimateCommand.Run(rest),
                    // Diagnostic, for tools/gpu-check.sh; not in the usage text.
                    "golden" => GoldenCommand.Run(rest),
                    _ => throw new UsageException($"unknown command '{args[0]}'"),
                };
            }
            catch (UsageException e)
            {
                Console.Error.WriteLine($"engine: {e.Message} (see 'engine --help')");
                return 2;
            }
            catch (Exception e) when (e is ModelFormatException or ControlVectorException or StoreException)
            {
                Console.Error.WriteLine($"engine: {e.Message}");
                return 1;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException
                                          or NotSupportedException or ContextOverflowException)
            {
                Console.Error.WriteLine($"engine: {e.Message}");
                return 1;
            }
        }

        /// <summary>The model used when no --model is given: models/stories260K.gguf beside the executable (where the
        /// tool package and the build output carry it), else in a folder above it (a repository checkout), else under the
        /// current folder.</summary>
        /// <exception cref="UsageException">None of those has it; the message lists where it looked.</exception>
        public static string DefaultModelPath()
        {
            const string fileName = "stories260K.gguf";
            var beside = Path.Combine(AppContext.BaseDirectory, "models", fileName);
            if (File.Exists(beside)) return beside;
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory).Parent; dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "models", fileName);
                if (File.Exists(candidate)) return candidate;
            }
            var local = Path.Combine(Environment.CurrentDirectory, "models", fileName);
            if (File.Exists(local)) return local;
            throw new UsageException($"no --model given and the default model was not found (looked for {beside}, for models/{fileName} " +
                                     $"in the folders above it, and for {local}): pass --model FILE with a .gguf file or a Hugging Face folder");
        }
    }
}
