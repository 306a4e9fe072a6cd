namespace Engine.Models;

/// <summary>What differs between the dense Llama-family architectures this engine runs. Everything else
/// (RMSNorm, grouped-query attention with RoPE, SwiGLU) is shared, so one forward pass serves all of them.</summary>
public sealed record ArchitectureTraits(
    string Name,
    RopeStyle GgufRopeStyle,   // as llama.cpp applies it to GGUF weights
    bool QkvBias,              // qwen2: q, k and v projections carry biases
    bool QkNorm)               // qwen3: RMSNorm on each head of q and k before RoPE
{
    public static readonly ArchitectureTraits Llama = new("llama", RopeStyle.Normal, QkvBias: false, QkNorm: false);
    public static readonly ArchitectureTraits Qwen2 = new("qwen2", RopeStyle.NeoX, QkvBias: true, QkNorm: false);
    public static readonly ArchitectureTraits Qwen3 = new("qwen3", RopeStyle.NeoX, QkvBias: false, QkNorm: true);

    public static IReadOnlyList<ArchitectureTraits> Supported { get; } = [Llama, Qwen2, Qwen3];

    public static ArchitectureTraits Get(string architecture) =>
        Supported.FirstOrDefault(a => a.Name == architecture)
        ?? throw new Engine.Formats.ModelFormatException(Engine.Formats.FormatErrorKind.InvalidConfig,
            $"unsupported architecture '{architecture}' (supported: {string.Join(", ", Supported.Select(a => a.Name))})",
            field: "general.architecture", actual: architecture);
}
