namespace Engine;

/// <summary>How <see cref="Model.Load"/> opens a model. Every property has a sensible default, so
/// <c>new ModelLoadOptions()</c> runs the model on the CPU with all cores.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>Where the model runs; <see cref="ComputeDevice.Cpu"/> by default. GPUs come from the Engine.Gpu package
    /// (<c>GpuDevices.Cuda</c>, <c>GpuDevices.Auto</c>, ...).</summary>
    public ComputeDevice Device { get; init; } = ComputeDevice.Cpu;

    /// <summary>On a GPU device, how many of the first layers run there (the rest on the CPU), for models larger than
    /// the card; null puts every layer on the device (with <c>GpuDevices.Auto</c>: as many as fit).</summary>
    public int? GpuLayers { get; init; }

    /// <summary>CPU worker threads; 0 (the default) uses one per core.</summary>
    public int Threads { get; init; }

    /// <summary>Tokens a session holds by default (prompt and generated text together); 0 (the default) means the
    /// model's trained context, capped at 4096 so a small machine does not reserve gigabytes of cache it may never use;
    /// <see cref="TrainedContext"/> means the whole trained context (a server's choice: the KV pool is still bounded by
    /// <see cref="KvCacheBytes"/> and the free memory). A session can ask for another length
    /// (<see cref="Model.CreateSession(int)"/>).</summary>
    public int ContextLength { get; init; }

    /// <summary>The <see cref="ContextLength"/> that asks for the model's whole trained context, uncapped.</summary>
    public const int TrainedContext = -1;

    /// <summary>How the KV cache stores keys and values: <see cref="KvCacheType.F16"/> (the default, as llama.cpp's),
    /// <see cref="KvCacheType.F32"/> (exact, twice the memory) or <see cref="KvCacheType.Q8_0"/> (about half of F16's).</summary>
    public KvCacheType KvCacheType { get; init; } = KvCacheType.F16;

    /// <summary>Bytes of KV cache shared by all sessions, in blocks of 32 tokens; 0 (the default) sizes it for
    /// <see cref="ParallelSequences"/> sequences of the full context, capped by the memory left after the weights. On the
    /// CPU a block takes memory only once a token is stored in it, so the memory in use follows the tokens held.</summary>
    public long KvCacheBytes { get; init; }

    /// <summary>How many sequences of the full context the default KV cache is sized for (llama.cpp's --parallel); any
    /// number of sessions can run, sharing it, and requests wait or are preempted when it is full. 4 by default.</summary>
    public int ParallelSequences { get; init; } = 4;

    /// <summary>Let the CPU backend copy Q4_K, Q6_K and Q4_0 matrices (and F16 and BF16 ones on AVX-512 CPUs) into 8-row groups at
    /// load: up to twice the matmul speed for the same memory (llama.cpp does the same). Off, every matrix is read in place from the file.</summary>
    public bool RepackWeights { get; init; } = true;

    /// <summary>For GPTQ and AWQ checkpoints (Hugging Face folders with a <c>quantization_config</c>): multiply their
    /// 4-bit weights by float32 activations, which reproduces the checkpoint's dequantized model to float rounding
    /// (within 1e-3 per logit on the test fixtures) at a lower speed. False (the default) quantizes the activations to
    /// 8 bits in blocks of 32 as the GGUF kernels do: faster, and close (NMSE under 2e-3 on the fixtures). Other models
    /// ignore it.</summary>
    public bool QuantizedCheckpointFloatActivations { get; init; }

    /// <summary>A built-in chat format to use instead of the model's own template: chatml, qwen2, qwen3, llama3, llama2,
    /// deepseek-r1 or deepseek-v3; null (the default) runs the model's own Jinja template (tokenizer.chat_template), and
    /// recognizes a built-in format only for a model without one.</summary>
    public string? ChatTemplate { get; init; }

    /// <summary>A Jinja chat template (Hugging Face's format) to run instead of the model's own; it wins over
    /// <see cref="ChatTemplate"/>. Null (the default) uses the model's.</summary>
    public string? ChatTemplateText { get; init; }

    /// <summary>A control vector added to every forward pass for the model's whole life, as llama.cpp's
    /// <c>--control-vector</c> does (choose layers first with <see cref="Engine.ControlVector.ForLayers"/>). Null (the
    /// default) steers nothing. It must fit the model (width = embedding length, layers below the layer count), or
    /// loading fails with <see cref="ControlVectorException"/>. For steering that can be switched off, use
    /// <see cref="Model.ApplyControlVector(Engine.ControlVector)"/> instead.</summary>
    public ControlVector? ControlVector { get; init; }

    /// <summary>Told what long loading steps are doing (opening the file, a GPU upload, repacking a large model), one
    /// report each; null reports nothing.</summary>
    public IProgress<ModelLoadProgress>? Progress { get; init; }
}

/// <summary>One step of loading a model, reported through <see cref="ModelLoadOptions.Progress"/>.</summary>
/// <param name="Message">What is happening, for people ("preparing 4.6 GiB of weights for cpu...").</param>
/// <param name="Fraction">How much of the whole load is done, from 0 to 1, when it is known; otherwise null.</param>
public sealed record ModelLoadProgress(string Message, double? Fraction);

/// <summary>How the KV cache stores each key and value (<see cref="ModelLoadOptions.KvCacheType"/>).</summary>
public enum KvCacheType
{
    /// <summary>IEEE half precision: llama.cpp's default.</summary>
    F16,
    /// <summary>Single precision: exact, twice F16's memory.</summary>
    F32,
    /// <summary>8-bit blocks of 32 values with one F16 scale (ggml's q8_0): about half of F16's memory.</summary>
    Q8_0,
}

internal static class KvCacheTypes
{
    /// <summary>The pool's element type for the public choice.</summary>
    public static Engine.Backends.KvElementType ToElementType(this KvCacheType type) => type switch
    {
        KvCacheType.F32 => Engine.Backends.KvElementType.F32,
        KvCacheType.Q8_0 => Engine.Backends.KvElementType.Q8_0,
        _ => Engine.Backends.KvElementType.F16,
    };
}
