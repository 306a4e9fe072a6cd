namespace Engine.Formats;

/// <summary>Tensor storage types by their ggml id, as llama.cpp numbers them (ggml.h). Gaps are ids that
/// llama.cpp has retired; they are rejected like any unknown id.</summary>
public enum GgmlType : uint
{
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3,
    Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
}

/// <summary>Block geometry of a ggml type: a row of <c>n</c> elements (n a multiple of BlockSize) takes
/// n / BlockSize * BytesPerBlock bytes.</summary>
public readonly record struct GgmlTypeInfo(GgmlType Type, string Name, int BlockSize, int BytesPerBlock, bool IsQuantized);

public static class GgmlTypes
{
    static readonly GgmlTypeInfo?[] Table = Build();

    static GgmlTypeInfo?[] Build()
    {
        var t = new GgmlTypeInfo?[40];
        void Add(GgmlType type, int blockSize, int bytesPerBlock, bool quantized) =>
            t[(int)type] = new GgmlTypeInfo(type, type.ToString(), blockSize, bytesPerBlock, quantized);
        const int QK_K = 256;
        Add(GgmlType.F32, 1, 4, false);
        Add(GgmlType.F16, 1, 2, false);
        Add(GgmlType.BF16, 1, 2, false);
        Add(GgmlType.F64, 1, 8, false);
        Add(GgmlType.I8, 1, 1, false);
        Add(GgmlType.I16, 1, 2, false);
        Add(GgmlType.I32, 1, 4, false);
        Add(GgmlType.I64, 1, 8, false);
        Add(GgmlType.Q4_0, 32, 2 + 16, true);
        Add(GgmlType.Q4_1, 32, 2 + 2 + 16, true);
        Add(GgmlType.Q5_0, 32, 2 + 4 + 16, true);
        Add(GgmlType.Q5_1, 32, 2 + 2 + 4 + 16, true);
        Add(GgmlType.Q8_0, 32, 2 + 32, true);
        Add(GgmlType.Q8_1, 32, 4 + 32, true);
        Add(GgmlType.Q2_K, QK_K, QK_K / 16 + QK_K / 4 + 2 + 2, true);             // 84
        Add(GgmlType.Q3_K, QK_K, QK_K / 8 + QK_K / 4 + 12 + 2, true);             // 110
        Add(GgmlType.Q4_K, QK_K, 2 + 2 + 12 + QK_K / 2, true);                    // 144
        Add(GgmlType.Q5_K, QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2, true);         // 176
        Add(GgmlType.Q6_K, QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2, true);      // 210
        Add(GgmlType.Q8_K, QK_K, 4 + QK_K + QK_K / 16 * 2, true);                 // 292
        Add(GgmlType.IQ2_XXS, QK_K, 2 + QK_K / 4, true);                          // 66
        Add(GgmlType.IQ2_XS, QK_K, 2 + QK_K / 4 + QK_K / 32, true);               // 74
        Add(GgmlType.IQ3_XXS, QK_K, 2 + 3 * QK_K / 8, true);                      // 98
        Add(GgmlType.IQ1_S, QK_K, 2 + QK_K / 8 + QK_K / 16, true);                // 50
        Add(GgmlType.IQ4_NL, 32, 2 + 16, true);                                   // 18
        Add(GgmlType.IQ3_S, QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 8 + QK_K / 64, true); // 110
        Add(GgmlType.IQ2_S, QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 32, true);    // 82
        Add(GgmlType.IQ4_XS, QK_K, 2 + 2 + QK_K / 64 + QK_K / 2, true);           // 136
        Add(GgmlType.IQ1_M, QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32, true);        // 56
        Add(GgmlType.TQ1_0, QK_K, (QK_K - 4 * QK_K / 64) / 5 + QK_K / 64 + 2, true); // 54
        Add(GgmlType.TQ2_0, QK_K, QK_K / 4 + 2, true);                            // 66
        Add(GgmlType.MXFP4, 32, 1 + 16, true);                                    // 17
        return t;
    }

    /// <summary>Looks up a type id read from a file; false for ids llama.cpp does not know (or has retired).</summary>
    public static bool TryGet(uint id, out GgmlTypeInfo info)
    {
        if (id < (uint)Table.Length && Table[id] is { } found) { info = found; return true; }
        info = default;
        return false;
    }

    public static GgmlTypeInfo Info(this GgmlType type) =>
        TryGet((uint)type, out var info) ? info : throw new ArgumentOutOfRangeException(nameof(type), type, "unknown ggml type");

    /// <summary>All known types, in id order.</summary>
    public static IEnumerable<GgmlTypeInfo> All => Table.Where(t => t is not null).Select(t => t!.Value);

    /// <summary>Bytes taken by a row-major tensor of this type with the given element count along the
    /// contiguous dimension (ne0) and the given number of rows, or null when it overflows or ne0 is not a
    /// multiple of the block size.</summary>
    public static long? TryByteSize(this GgmlTypeInfo info, long ne0, long rows)
    {
        if (ne0 < 0 || rows < 0 || ne0 % info.BlockSize != 0) return null;
        try { return checked(ne0 / info.BlockSize * info.BytesPerBlock * rows); }
        catch (OverflowException) { return null; }
    }
}
