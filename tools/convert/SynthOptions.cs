using Engine.Convert.Presets;
using Engine.Convert.Quant;
using Engine.Convert.Weights;

namespace Engine.Convert;

public enum OutputFormat { Gguf, Safetensors }

/// <summary>What `engine-convert synth` makes. <see cref="Preset"/> already has any --layers override applied.</summary>
public sealed record SynthOptions(ModelPreset Preset, OutputType Type, string OutputPath)
{
    public ulong Seed { get; init; }
    public OutputFormat Format { get; init; } = OutputFormat.Gguf;
    /// <summary>--vocab: the vocab GGUF to take the tokenizer from, instead of the preset's found by name.</summary>
    public string? VocabPath { get; init; }
    /// <summary>--force: replace an existing output.</summary>
    public bool Overwrite { get; init; }
    public int PoolLength { get; init; } = NormalPool.DefaultLength;
    /// <summary>--dry-run: print the tensor table (name, type, shape) and sizes, write nothing.</summary>
    public bool DryRun { get; init; }
    /// <summary>--format gptq|awq: the projections are written as 4-bit GPTQ / AWQ linears (safetensors output only);
    /// null for plain float checkpoints.</summary>
    public Quant.Int4Settings? Int4 { get; init; }
}

/// <summary>What was written.</summary>
public sealed record SynthResult(string Path, long Bytes, int TensorCount, long Parameters, string TypeCounts, TimeSpan Elapsed);
