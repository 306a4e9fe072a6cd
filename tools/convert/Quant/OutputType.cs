using Engine.Formats;
using Engine.Quantization;

namespace Engine.Convert.Quant;

/// <summary>A file type the synthesizer writes: one of llama-quantize's mixes (<see cref="QuantizationMixes"/>), whose
/// value goes to general.file_type and whose base type most weights get. Which type each tensor gets is the engine's
/// port of llama.cpp's choice (<see cref="TensorTypePlanner"/>), the same one `engine quantize` uses.</summary>
public sealed record OutputType
{
    OutputType(QuantizationMix mix) => Mix = mix;

    internal QuantizationMix Mix { get; }
    public string Name => Mix.Name;
    public uint FileTypeId => Mix.FileType;
    public GgmlType DefaultType => Mix.BaseType;

    public static readonly OutputType F32 = new(QuantizationMixes.F32);
    public static readonly OutputType F16 = new(QuantizationMixes.F16);
    public static readonly OutputType Q4_0 = new(QuantizationMixes.Q4_0);
    public static readonly OutputType Q8_0 = new(QuantizationMixes.Q8_0);
    public static readonly OutputType Q4_K_M = new(QuantizationMixes.Q4_K_M);
    public static readonly OutputType BF16 = new(QuantizationMixes.BF16);

    public static IReadOnlyList<OutputType> All { get; } = [F16, BF16, Q8_0, Q4_0, Q4_K_M, F32];

    public static OutputType? Find(string name) =>
        All.FirstOrDefault(t => string.Equals(t.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>A float type: every matrix is stored as it is, nothing is quantized.</summary>
    public bool IsFloat => Mix.IsFloat;

    public override string ToString() => Name;
}
