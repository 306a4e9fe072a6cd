namespace Engine.Formats;

/// <summary>Tensor storage types by their ggml id, as llama.cpp numbers them (ggml.h). Gaps are ids that
/// llama.cpp has retired; they are rejected like any unknown id.</summary>
public enum GgmlType : uint
{
    /// <summary>32-bit IEEE 754 float.</summary>
    F32 = 0,
    /// <summary>16-bit IEEE 754 half-precision float.</summary>
    F16 = 1,
    /// <summary>4-bit weights in blocks of 32 with one f16 scale (18 bytes a block).</summary>
    Q4_0 = 2,
    /// <summary>4-bit weights in blocks of 32 with an f16 scale and an f16 minimum (20 bytes a block).</summary>
    Q4_1 = 3,
    /// <summary>5-bit weights in blocks of 32 with one f16 scale (22 bytes a block).</summary>
    Q5_0 = 6,
    /// <summary>5-bit weights in blocks of 32 with an f16 scale and an f16 minimum (24 bytes a block).</summary>
    Q5_1 = 7,
    /// <summary>8-bit weights in blocks of 32 with one f16 scale (34 bytes a block).</summary>
    Q8_0 = 8,
    /// <summary>8-bit values in blocks of 32 with an f16 scale and an f16 sum (36 bytes a block); llama.cpp quantizes
    /// activations to it for dot products with Q4_1 / Q5_1 weights.</summary>
    Q8_1 = 9,
    /// <summary>2-bit k-quant: super-blocks of 256 with 4-bit sub-block scales and minimums (84 bytes).</summary>
    Q2_K = 10,
    /// <summary>3-bit k-quant: super-blocks of 256 with 6-bit sub-block scales (110 bytes).</summary>
    Q3_K = 11,
    /// <summary>4-bit k-quant: super-blocks of 256 with 6-bit sub-block scales and minimums (144 bytes).</summary>
    Q4_K = 12,
    /// <summary>5-bit k-quant: super-blocks of 256 with 6-bit sub-block scales and minimums (176 bytes).</summary>
    Q5_K = 13,
    /// <summary>6-bit k-quant: super-blocks of 256 with 8-bit sub-block scales (210 bytes).</summary>
    Q6_K = 14,
    /// <summary>8-bit values in super-blocks of 256 with an f32 scale and per-16 sums (292 bytes); llama.cpp quantizes
    /// activations to it for dot products with k-quant weights.</summary>
    Q8_K = 15,
    /// <summary>i-quant, 2.06 bits per weight (super-blocks of 256, 66 bytes).</summary>
    IQ2_XXS = 16,
    /// <summary>i-quant, 2.31 bits per weight (super-blocks of 256, 74 bytes).</summary>
    IQ2_XS = 17,
    /// <summary>i-quant, 3.06 bits per weight (super-blocks of 256, 98 bytes).</summary>
    IQ3_XXS = 18,
    /// <summary>i-quant, 1.56 bits per weight (super-blocks of 256, 50 bytes).</summary>
    IQ1_S = 19,
    /// <summary>Non-linear 4-bit: blocks of 32 with an f16 scale, values through a fixed 16-entry table (18 bytes).</summary>
    IQ4_NL = 20,
    /// <summary>i-quant, 3.44 bits per weight (super-blocks of 256, 110 bytes).</summary>
    IQ3_S = 21,
    /// <summary>i-quant, 2.56 bits per weight (super-blocks of 256, 82 bytes).</summary>
    IQ2_S = 22,
    /// <summary>Non-linear 4-bit in super-blocks of 256 with 6-bit sub-block scales, 4.25 bits per weight (136 bytes).</summary>
    IQ4_XS = 23,
    /// <summary>8-bit signed integer.</summary>
    I8 = 24,
    /// <summary>16-bit signed integer.</summary>
    I16 = 25,
    /// <summary>32-bit signed integer.</summary>
    I32 = 26,
    /// <summary>64-bit signed integer.</summary>
    I64 = 27,
    /// <summary>64-bit IEEE 754 double.</summary>
    F64 = 28,
    /// <summary>i-quant, 1.75 bits per weight (super-blocks of 256, 56 bytes).</summary>
    IQ1_M = 29,
    /// <summary>bfloat16: the upper 16 bits of an f32.</summary>
    BF16 = 30,
    /// <summary>Ternary weights (-1, 0, +1), 1.69 bits per weight (super-blocks of 256, 54 bytes).</summary>
    TQ1_0 = 34,
    /// <summary>Ternary weights (-1, 0, +1) at 2 bits each plus a scale, 2.06 bits per weight (super-blocks of 256, 66 bytes).</summary>
    TQ2_0 = 35,
    /// <summary>OCP microscaling FP4 (E2M1) in blocks of 32 with one E8M0 scale (17 bytes a block).</summary>
    MXFP4 = 39,
}

/// <summary>Block geometry of a ggml type: a row of <c>n</c> elements (n a multiple of BlockSize) takes
/// n / BlockSize * BytesPerBlock bytes.</summary>
/// <param name="Type">The type described.</param>
/// <param name="Name">The type's name as llama.cpp spells it ("Q4_K", "F16").</param>
/// <param name="BlockSize">Elements per block: 1 for plain floats and integers, 32 or 256 for quantized types.</param>
/// <param name="BytesPerBlock">Bytes one block takes in the file.</param>
/// <param name="IsQuantized">True for block-quantized types; false for plain floats and integers.</param>
public readonly record struct GgmlTypeInfo(GgmlType Type, string Name, int BlockSize, int BytesPerBlock, bool IsQuantized);

/// <summary>The block geometry of every ggml type this library knows, and byte-size arithmetic on it.</summary>
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
    /// <param name="id">The ggml type id, as stored in a GGUF tensor info.</param>
    /// <param name="info">The type's geometry when the id is known; <c>default</c> otherwise.</param>
    public static bool TryGet(uint id, out GgmlTypeInfo info)
    {
        if (id < (uint)Table.Length && Table[id] is { } found) { info = found; return true; }
        info = default;
        return false;
    }

    /// <summary>The geometry of a type.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="type"/> is not a known ggml type (a value cast
    /// from an unchecked integer).</exception>
    public static GgmlTypeInfo Info(this GgmlType type) =>
        TryGet((uint)type, out var info) ? info : throw new ArgumentOutOfRangeException(nameof(type), type, "unknown ggml type");

    /// <summary>All known types, in id order.</summary>
    public static IEnumerable<GgmlTypeInfo> All => Table.Where(t => t is not null).Select(t => t!.Value);

    /// <summary>Bytes taken by a row-major tensor of this type with the given element count along the
    /// contiguous dimension (ne0) and the given number of rows, or null when it overflows 64 bits, either count is
    /// negative, or ne0 is not a multiple of the block size.</summary>
    /// <param name="info">The tensor's type.</param>
    /// <param name="ne0">Elements per row (the contiguous dimension).</param>
    /// <param name="rows">Number of rows (the product of the other dimensions).</param>
    public static long? TryByteSize(this GgmlTypeInfo info, long ne0, long rows)
    {
        if (ne0 < 0 || rows < 0 || ne0 % info.BlockSize != 0) return null;
        try { return checked(ne0 / info.BlockSize * info.BytesPerBlock * rows); }
        catch (OverflowException) { return null; }
    }
}
