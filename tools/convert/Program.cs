using System.Runtime.InteropServices;
using Engine.Convert;
using Engine.Convert.Gguf;
using Engine.Convert.Safetensors;

const string Usage = """
    engine-convert: random-weight benchmark models of real shapes (speed does not depend on weight values)

    usage:
      engine-convert presets
          list the presets with parameter counts and sizes
      engine-convert synth --preset NAME --type TYPE -o OUT [--seed N] [--layers N] [--format gguf|safetensors|gptq|awq]
                           [--group-size N] [--act-order] [--asym] [--vocab PATH] [--force] [--pool N] [--dry-run]
          TYPE: F16, BF16, Q8_0, Q4_0, Q4_K_M (llama-quantize's mix), F32
          --format safetensors writes a Hugging Face folder OUT (config.json + model.safetensors; F16, BF16, F32)
          --format gptq|awq writes a 4-bit checkpoint folder as AutoGPTQ (v1) / AutoAWQ (gemm) save it: every
                   projection as qweight/qzeros/scales(/g_idx), the rest in TYPE (default F16)
          --group-size N: input rows per scale (default 128; -1 = one group per row, GPTQ only)
          --act-order: GPTQ desc_act (a permuted g_idx; q/k/v share one order, gate/up another)
          --asym: GPTQ with zero points (sym false); AWQ always has them
          --vocab: the vocab GGUF to copy tokenizer.* from (default: the preset's llama.cpp models/ggml-vocab-*.gguf,
                   found under $ENGINE_SHARED_DIR/models/ggml-vocab or shared/models/ggml-vocab above this folder)
          --force: replace OUT if it exists. OUT is written as OUT.part and renamed when complete.
          --dry-run: print every tensor's name, type and shape and the file size; write nothing
          --pool N: random values drawn once and reused (default 4194304); smaller is quicker for tiny shapes
    """;

if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
{
    Console.WriteLine(Usage);
    return args.Length == 0 ? 2 : 0;
}

using var cancel = new CancellationTokenSource();
// Ctrl-C and `kill` stop the write at the next buffer so the .part file is removed rather than left behind.
void Stop(PosixSignalContext context) { context.Cancel = true; cancel.Cancel(); }
using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
try
{
    switch (args[0])
    {
        case "presets":
            PresetTable.Print(Console.Out);
            return 0;
        case "synth":
            var options = CommandLine.ParseSynth(args[1..]);
            if (options.Format == OutputFormat.Safetensors) SafetensorsSynthesizer.Write(options, Console.Error, cancel.Token);
            else GgufSynthesizer.Write(options, Console.Error, cancel.Token);
            return 0;
        default:
            Console.Error.WriteLine($"engine-convert: unknown command '{args[0]}'\n");
            Console.Error.WriteLine(Usage);
            return 2;
    }
}
catch (ConvertException e)
{
    Console.Error.WriteLine($"engine-convert: {e.Message}");
    return 1;
}
catch (OperationCanceledException)
{
    Console.Error.WriteLine("\nengine-convert: interrupted; the partial file was removed");
    return 130;
}
