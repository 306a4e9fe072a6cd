namespace Engine.Gpu.Kernels.Quantized;

/// <summary>Eight dequantized weights of one row, as every block type hands them to the shared kernels: V0..V3
/// belong to block columns ColA..ColA+3 and V4..V7 to ColB..ColB+3 (columns relative to the block's first).
/// Two runs of four because every ggml layout packs elements c and c + 16 (or + 32, + 64) into one byte.</summary>
internal struct DecodedPiece
{
    public float V0, V1, V2, V3, V4, V5, V6, V7;
    public int ColA, ColB;
}
