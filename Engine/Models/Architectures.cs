namespace Engine.Models;

/// <summary>Whether an architecture's feed-forward is a mixture of experts.</summary>
internal enum ExpertLayout
{
    /// <summary>Always one dense SwiGLU.</summary>
    None,
    /// <summary>Dense unless the file declares experts (llama: Mixtral is a llama with expert_count > 0).</summary>
    Optional,
    /// <summary>Always experts (qwen2moe, qwen3moe).</summary>
    Required,
}

/// <summary>What differs between the Llama-family architectures this engine runs. Everything else (RMSNorm,
/// grouped-query attention with RoPE, SwiGLU feed-forwards) is shared, so one forward pass serves all of them.</summary>
internal sealed record ArchitectureTraits(
    string Name,
    RopeStyle GgufRopeStyle,   // as llama.cpp applies it to GGUF weights
    bool QkvBias,              // qwen2: q, k and v projections must carry biases (elsewhere they are loaded when present)
    bool QkNorm,               // qwen3: RMSNorm on each head of q and k before RoPE
    ExpertLayout Experts = ExpertLayout.None,
    bool NormalizesExpertWeights = false, // llama.cpp's norm_w for this architecture (it ignores GGUF keys for it)
    bool SharedExpert = false)            // qwen2moe: an always-on expert with a sigmoid gate beside the routed ones
{
    public static readonly ArchitectureTraits Llama = new("llama", RopeStyle.Normal, QkvBias: false, QkNorm: false,
        ExpertLayout.Optional, NormalizesExpertWeights: true);
    public static readonly ArchitectureTraits Qwen2 = new("qwen2", RopeStyle.NeoX, QkvBias: true, QkNorm: false);
    public static readonly ArchitectureTraits Qwen3 = new("qwen3", RopeStyle.NeoX, QkvBias: false, QkNorm: true);
    // llama.cpp treats qwen2moe's q/k/v biases as optional (Qwen1.5-MoE has them).
    public static readonly ArchitectureTraits Qwen2Moe = new("qwen2moe", RopeStyle.NeoX, QkvBias: false, QkNorm: false,
        ExpertLayout.Required, NormalizesExpertWeights: false, SharedExpert: true);
    public static readonly ArchitectureTraits Qwen3Moe = new("qwen3moe", RopeStyle.NeoX, QkvBias: false, QkNorm: true,
        ExpertLayout.Required, NormalizesExpertWeights: true);

    public static IReadOnlyList<ArchitectureTraits> Supported { get; } = [Llama, Qwen2, Qwen3, Qwen2Moe, Qwen3Moe];

    public static ArchitectureTraits Get(string architecture) =>
        Supported.FirstOrDefault(a => a.Name == architecture)
        ?? throw new Engine.Formats.ModelFormatException(Engine.Formats.FormatErrorKind.InvalidConfig,
            $"unsupported architecture '{architecture}' (supported: {string.Join(", ", Supported.Select(a => a.Name))})",
            field: "general.architecture", actual: architecture);
}
