using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Engine.Gpu.Kernels;

/// <summary>Writes each row's key or value into its slot of a paged KV pool's layer (slot = block * BlockTokens +
/// offset, the row's place in the pool), converting to the pool's element type exactly as the CPU backend does:
/// F32 copied, F16 rounded to nearest even, Q8_0 quantized as Q8_0Format.QuantizeActivations (d = amax / 127 stored
/// as f16, q = round-half-even(x * 127 / amax)), so a GPU pool holds the CPU pool's bytes.</summary>
internal sealed class KvStoreKernels
{
    readonly Action<Index1D, ArrayView<float>, ArrayView<int>, int, ArrayView<float>> _f32;
    readonly Action<Index1D, ArrayView<float>, ArrayView<int>, int, ArrayView<ushort>> _f16;
    readonly Action<Index1D, ArrayView<float>, ArrayView<int>, int, ArrayView<byte>> _q8_0;

    public KvStoreKernels(Accelerator accelerator)
    {
        _f32 = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, int, ArrayView<float>>(StoreF32);
        _f16 = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, int, ArrayView<ushort>>(StoreF16);
        _q8_0 = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, int, ArrayView<byte>>(StoreQ8_0);
    }

    /// <summary>Row r of `source` (rows of `width` values) into row slots[r] of `pool`.</summary>
    public void Store(ArrayView<float> source, ArrayView<int> slots, int rows, int width, ArrayView<float> pool) =>
        _f32(rows * width, source, slots, width, pool);

    public void Store(ArrayView<float> source, ArrayView<int> slots, int rows, int width, ArrayView<ushort> pool) =>
        _f16(rows * width, source, slots, width, pool);

    public void Store(ArrayView<float> source, ArrayView<int> slots, int rows, int width, ArrayView<byte> pool) =>
        _q8_0(rows * (width / Q8_0KvElement.BlockValues), source, slots, width, pool);

    static void StoreF32(Index1D index, ArrayView<float> source, ArrayView<int> slots, int width, ArrayView<float> pool)
    {
        int row = index / width, i = index % width;
        pool[(long)slots[row] * width + i] = source[index];
    }

    static void StoreF16(Index1D index, ArrayView<float> source, ArrayView<int> slots, int width, ArrayView<ushort> pool)
    {
        int row = index / width, i = index % width;
        pool[(long)slots[row] * width + i] = DeviceHalfEncoder.FromFloat(source[index]);
    }

    /// <summary>One thread per 32-value block of a row.</summary>
    static void StoreQ8_0(Index1D index, ArrayView<float> source, ArrayView<int> slots, int width, ArrayView<byte> pool)
    {
        const int Values = Q8_0KvElement.BlockValues;
        int blocksPerRow = width / Values;
        int row = index / blocksPerRow, block = index % blocksPerRow;
        long first = (long)row * width + block * Values;
        float amax = 0f;
        for (int j = 0; j < Values; j++) amax = XMath.Max(amax, XMath.Abs(source[first + j]));
        ushort d = Q8_0Rounding.Scale(amax);
        float inverse = Q8_0Rounding.Inverse(amax);
        long target = (long)slots[row] * (blocksPerRow * Q8_0KvElement.BlockBytes) + (long)block * Q8_0KvElement.BlockBytes;
        pool[target] = (byte)(d & 0xFF);
        pool[target + 1] = (byte)(d >> 8);
        for (int j = 0; j < Values; j++)
            pool[target + 2 + j] = (byte)(sbyte)Q8_0Rounding.RoundHalfToEven(source[first + j] * inverse);
    }
}
