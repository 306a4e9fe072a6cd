using Engine.Formats;

namespace Engine.Convert.Quant;

/// <summary>A file type as llama.cpp names it (LLAMA_FTYPE_*): the value of general.file_type and the type most
/// weights get. Mixes such as Q4_K_M pick other types for some tensors (see <see cref="TensorTypeRules"/>).</summary>
public sealed record OutputType(string Name, uint FileTypeId, GgmlType DefaultType)
{
    public static readonly OutputType F32 = new("F32", 0, GgmlType.F32);
    public static readonly OutputType F16 = new("F16", 1, GgmlType.F16);
    public static readonly OutputType Q4_0 = new("Q4_0", 2, GgmlType.Q4_0);
    public static readonly OutputType Q8_0 = new("Q8_0", 7, GgmlType.Q8_0);
    public static readonly OutputType Q4_K_M = new("Q4_K_M", 15, GgmlType.Q4_K);
    public static readonly OutputType BF16 = new("BF16", 32, GgmlType.BF16);

    public static IReadOnlyList<OutputType> All { get; } = [F16, BF16, Q8_0, Q4_0, Q4_K_M, F32];

    public static OutputType? Find(string name) =>
        All.FirstOrDefault(t => string.Equals(t.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>A float type: every matrix is stored as it is, nothing is quantized.</summary>
    public bool IsFloat => !DefaultType.Info().IsQuantized;

    public override string ToString() => Name;
}
