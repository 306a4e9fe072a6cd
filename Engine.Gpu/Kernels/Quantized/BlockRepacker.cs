using System.Runtime.InteropServices;
using Engine.Models;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>Host side of an upload: raw ggml blocks from the memory-mapped file to the word-aligned device layout,
/// staged through a bounded buffer so a multi-GiB matrix never needs a second full copy in host memory.</summary>
public static unsafe class BlockRepacker<TDecoder> where TDecoder : struct, IBlockDecoder
{
    const int StagingBlocks = 1 << 16;

    /// <summary>Device words of a rows x cols matrix.</summary>
    public static long Words(int rows, int cols) => (long)rows * (cols / TDecoder.BlockElements) * TDecoder.BlockWords;

    public static BlockDeviceMatrix Upload(Accelerator accelerator, WeightMatrix weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (weights.Type != TDecoder.Type)
            throw new ArgumentException($"{weights.Name} is {weights.Type}, these kernels are for {TDecoder.Type}", nameof(weights));
        if (weights.Rows <= 0 || weights.Cols <= 0 || weights.Cols % TDecoder.BlockElements != 0)
            throw new ArgumentException($"{weights}: needs rows > 0 and cols a positive multiple of {TDecoder.BlockElements}", nameof(weights));
        long blocks = (long)weights.Rows * (weights.Cols / TDecoder.BlockElements);
        if (weights.View.ByteSize != blocks * TDecoder.RawBlockBytes)
            throw new ArgumentException($"{weights}: {weights.View.ByteSize} bytes, {blocks * TDecoder.RawBlockBytes} expected", nameof(weights));

        var buffer = accelerator.Allocate1D<uint>(blocks * TDecoder.BlockWords);
        try
        {
            var staging = new uint[(int)Math.Min(blocks, StagingBlocks) * TDecoder.BlockWords];
            byte* source = weights.View.Pointer;
            for (long first = 0; first < blocks; first += StagingBlocks)
            {
                int count = (int)Math.Min(StagingBlocks, blocks - first);
                var words = staging.AsSpan(0, count * TDecoder.BlockWords);
                Repack(new ReadOnlySpan<byte>(source + first * TDecoder.RawBlockBytes, count * TDecoder.RawBlockBytes), words);
                buffer.View.BaseView.SubView(first * TDecoder.BlockWords, words.Length).CopyFromCPU(words);
            }
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
        return new BlockDeviceMatrix(weights.Name, weights.Type, weights.Rows, weights.Cols, buffer);
    }

    /// <summary>Raw blocks to device words: each block's bytes with the padding inserted at PadOffset.</summary>
    public static void Repack(ReadOnlySpan<byte> raw, Span<uint> words)
    {
        int rawBytes = TDecoder.RawBlockBytes, paddedBytes = TDecoder.BlockWords * 4, pad = TDecoder.PadOffset;
        var destination = MemoryMarshal.AsBytes(words);
        if (rawBytes == paddedBytes)
        {
            raw.CopyTo(destination);
            return;
        }
        destination.Clear();
        for (int b = 0; b < raw.Length / rawBytes; b++)
        {
            var block = raw.Slice(b * rawBytes, rawBytes);
            var target = destination.Slice(b * paddedBytes, paddedBytes);
            block[..pad].CopyTo(target);
            block[pad..].CopyTo(target[(pad + paddedBytes - rawBytes)..]);
        }
    }
}
