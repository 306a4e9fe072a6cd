using System.Runtime.InteropServices;
using Engine.Models;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels.Quantized;

/// <summary>Host side of an upload: raw ggml blocks from the memory-mapped file to the word-aligned device layout,
/// staged through a bounded buffer so a multi-GiB matrix never needs a second full copy in host memory.</summary>
internal static unsafe class BlockRepacker<TDecoder> where TDecoder : struct, IBlockDecoder
{
    const int StagingBlocks = 1 << 16;

    /// <summary>Device words of a rows x cols matrix.</summary>
    public static long Words(int rows, int cols) => (long)rows * (cols / TDecoder.BlockElements) * TDecoder.BlockWords;

    public static BlockDeviceMatrix Upload(Accelerator accelerator, WeightMatrix weights) => Upload(accelerator, weights.Name, [weights]);

    /// <summary>Uploads equal matrices one after another into one buffer (the experts of a layer: expert e's rows
    /// start at word e * <see cref="Words"/>(rows, cols)); the result has parts x rows rows.</summary>
    public static BlockDeviceMatrix Upload(Accelerator accelerator, string name, IReadOnlyList<WeightMatrix> parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        if (parts.Count == 0) throw new ArgumentException($"{name}: nothing to upload", nameof(parts));
        foreach (var weights in parts)
        {
            if (weights.Type != TDecoder.Type)
                throw new ArgumentException($"{weights.Name} is {weights.Type}, these kernels are for {TDecoder.Type}", nameof(parts));
            if (weights.Rows <= 0 || weights.Cols <= 0 || weights.Cols % TDecoder.BlockElements != 0)
                throw new ArgumentException($"{weights}: needs rows > 0 and cols a positive multiple of {TDecoder.BlockElements}", nameof(parts));
            if (weights.Rows != parts[0].Rows || weights.Cols != parts[0].Cols)
                throw new ArgumentException($"{weights} differs in shape from {parts[0]}", nameof(parts));
            long expected = (long)weights.Rows * (weights.Cols / TDecoder.BlockElements) * TDecoder.RawBlockBytes;
            if (weights.View.ByteSize != expected)
                throw new ArgumentException($"{weights}: {weights.View.ByteSize} bytes, {expected} expected", nameof(parts));
        }

        long partBlocks = (long)parts[0].Rows * (parts[0].Cols / TDecoder.BlockElements);
        var buffer = accelerator.Allocate1D<uint>(parts.Count * partBlocks * TDecoder.BlockWords);
        try
        {
            var staging = new uint[(int)Math.Min(partBlocks, StagingBlocks) * TDecoder.BlockWords];
            for (int part = 0; part < parts.Count; part++)
            {
                byte* source = parts[part].View.Pointer;
                long partWord = part * partBlocks * TDecoder.BlockWords;
                for (long first = 0; first < partBlocks; first += StagingBlocks)
                {
                    int count = (int)Math.Min(StagingBlocks, partBlocks - first);
                    var words = staging.AsSpan(0, count * TDecoder.BlockWords);
                    Repack(new ReadOnlySpan<byte>(source + first * TDecoder.RawBlockBytes, count * TDecoder.RawBlockBytes), words);
                    buffer.View.BaseView.SubView(partWord + first * TDecoder.BlockWords, words.Length).CopyFromCPU(words);
                }
            }
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
        return new BlockDeviceMatrix(name, TDecoder.Type, checked(parts.Count * parts[0].Rows), parts[0].Cols, buffer);
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
