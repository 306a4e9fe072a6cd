using Engine.Formats;
using ILGPU;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>
/// One ggml block type as the device sees it. A block of <see cref="BlockElements"/> weights is stored as
/// <see cref="BlockWords"/> 32-bit words: the raw block bytes with (where the raw size is not a multiple of 4)
/// two zero bytes inserted at <see cref="PadOffset"/>, chosen so that every multi-byte field starts on a word.
/// A block is read as BlockElements / 8 pieces; piece numbering must satisfy: pieces [16m, 16m + 16) of a row
/// cover exactly columns [128m, 128m + 128) (the tiled kernel stages 128 columns at a time).
/// <see cref="Decode"/> must compute each weight with exactly the float operations of the CPU reference
/// (Engine.Quantization Block*.DequantizeReferenceCore), so dequantization is bit-exact.
/// </summary>
internal interface IBlockDecoder
{
    static abstract GgmlType Type { get; }
    static abstract int BlockElements { get; }
    /// <summary>ggml block size in bytes (the file's layout).</summary>
    static abstract int RawBlockBytes { get; }
    static abstract int BlockWords { get; }
    /// <summary>Byte offset in the raw block where the padding (BlockWords * 4 - RawBlockBytes zero bytes) goes.</summary>
    static abstract int PadOffset { get; }

    /// <summary>Piece <paramref name="piece"/> (0 &lt;= piece &lt; BlockElements / 8) of the block whose first word is
    /// blocks[blockWord].</summary>
    static abstract DecodedPiece Decode(ArrayView<uint> blocks, long blockWord, int piece);
}
