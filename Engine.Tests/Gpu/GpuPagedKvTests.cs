using Engine.Backends;
using Engine.Backends.Cpu;
using Engine.Gpu;
using Engine.Models;
using Engine.Quantization;
using ILGPU.Runtime;

namespace Engine.Tests.Gpu;

/// <summary>The GPU's paged KV pool against the CPU backend's: the bytes each element type stores (F16 and Q8_0 are
/// exactly the CPU's), attention of a batch of several sequences with their own positions and scattered block tables
/// in every element type, RoPE at each row's own position, and the pool's device memory.</summary>
[Collection(GpuCollection.Name)]
public sealed unsafe class GpuPagedKvTests(GpuTestDevice device) : IDisposable
{
    readonly GpuBackend _gpu = new(device.Device, ownsDevice: false);
    readonly CpuBackend _cpu = new(1);

    public void Dispose() { _gpu.Dispose(); _cpu.Dispose(); }

    ActivationBuffer Upload(IBackend backend, float[] values)
    {
        var buffer = backend.Allocate("input", values.Length);
        backend.Write(buffer, 0, values);
        return buffer;
    }

    /// <summary>Stores `values` (rows of `width`) into a one-layer pool at slots 0, 1, 2, ... and returns the pool's
    /// key buffer as T (ushort halves or q8_0 bytes).</summary>
    T[] StoreAndReadKeys<T>(float[] values, int width, KvElementType type) where T : unmanaged
    {
        int rows = values.Length / width;
        var shape = new KvPoolShape(1, rows, 1, width, width, type);
        using var pool = (GpuKvPool)_gpu.CreateKvPool(shape);
        var batch = new ForwardBatch(1);
        batch.Add(new int[rows], 0, Enumerable.Range(0, rows).ToArray(), LogitsWanted.None);
        var k = Upload(_gpu, values);
        _gpu.StoreKv(pool, 0, batch, k, k);
        var keys = pool.Keys<T>(0);
        var stored = new T[keys.Length];
        keys.CopyToCPU(device.Device.Accelerator.DefaultStream, stored.AsSpan());
        return stored;
    }

    [Fact]
    public void An_F16_pool_rounds_every_value_to_nearest_even_as_the_cpu()
    {
        var values = new List<float>();
        for (int h = 0; h < 0x10000; h++)
        {
            float exact = (float)BitConverter.UInt16BitsToHalf((ushort)h);
            values.Add(exact); // every half, subnormals, infinities and NaNs included
            if ((h & 0x7FFF) >= 0x7C00 || (h & 0x7FFF) == 0x7BFF) continue;
            float next = (float)BitConverter.UInt16BitsToHalf((ushort)(h + 1));
            float tie = (exact + next) / 2; // exact in float: ties go to the even half
            values.Add(tie);
            values.Add(MathF.BitIncrement(tie));
            values.Add(MathF.BitDecrement(tie));
        }
        // Overflow (65520 and above round to infinity), the edge of the subnormals, random bit patterns.
        values.AddRange([65504f, 65519.996f, 65520f, 1e6f, -65520f, MathF.ScaleB(1, -25), MathF.BitIncrement(MathF.ScaleB(1, -25)),
            MathF.ScaleB(1, -26), MathF.ScaleB(1, -14), MathF.BitDecrement(MathF.ScaleB(1, -14)), float.Epsilon, -0f]);
        var random = new Random(31);
        while (values.Count % 256 != 0) values.Add(BitConverter.Int32BitsToSingle(random.Next() * (random.Next(2) == 0 ? 1 : -1)));

        var input = values.ToArray();
        var stored = StoreAndReadKeys<ushort>(input, 256, KvElementType.F16);
        for (int i = 0; i < input.Length; i++)
        {
            ushort expected = Fp16.FromSingle(input[i]);
            if (float.IsNaN(input[i])) float.IsNaN((float)BitConverter.UInt16BitsToHalf(stored[i])).Should().BeTrue($"NaN stays NaN (value {i})");
            else stored[i].Should().Be(expected, $"value {i}, {input[i]:R} (bits {BitConverter.SingleToUInt32Bits(input[i]):X8})");
        }
    }

    [Fact]
    public void A_Q8_0_pool_stores_the_cpus_blocks()
    {
        const int width = 64;
        var rows = new List<float[]>
        {
            new float[width], // all zero: scale 0, quants 0
            TestWeights.Random(width, 32, 3f),
            TestWeights.Random(width, 33, 1e-6f), // a scale that is a subnormal half
            TestWeights.Random(width, 34, 70000f),
        };
        // Ties: amax 127 (127/amax = 1) and its power-of-two multiples, values halfway between quants.
        foreach (float scale in new[] { 1f, 0.25f, 8f })
            rows.Add(Enumerable.Range(0, width).Select(j => (j == 5 ? 127f : (j % 17 - 8) + 0.5f) * scale).ToArray());
        var input = rows.SelectMany(r => r).ToArray();

        var stored = StoreAndReadKeys<byte>(input, width, KvElementType.Q8_0);
        var expected = new byte[stored.Length];
        fixed (float* x = input) fixed (byte* y = expected) Q8_0Format.QuantizeActivations(x, (BlockQ8_0*)y, input.Length);
        stored.Should().Equal(expected);
    }

    /// <summary>Three sequences in one pool of 4-position blocks, each through its own scattered block table: the
    /// prompts of two go in as one batch, then one step holds a decode row of the first, a prompt continuation of
    /// the second and the first row of the third. Attention agrees with the CPU backend (the stored elements are
    /// the same bits, so only float rounding differs), and on the GPU a sequence's rows give the same bits alone as
    /// in the batch.</summary>
    [Theory]
    [InlineData(nameof(KvElementType.F32))]
    [InlineData(nameof(KvElementType.F16))]
    [InlineData(nameof(KvElementType.Q8_0))]
    public void Attention_of_several_sequences_in_one_batch_matches_the_cpu(string typeName)
    {
        var type = Enum.Parse<KvElementType>(typeName); // by name: the enum is internal, a public theory cannot take it
        const int blockTokens = 4, blocks = 12, heads = 4, kvHeads = 2, headDim = 32, valueDim = 32;
        const int keyWidth = kvHeads * headDim, valueWidth = kvHeads * valueDim;
        int[] tableA = [5, 0, 7], tableB = [2, 9], tableC = [6];
        var prompts = new ForwardBatch(blockTokens);
        prompts.Add(new int[9], 0, tableA, LogitsWanted.None);   // A: positions 0..8
        prompts.Add(new int[5], 0, tableB, LogitsWanted.None);   // B: positions 0..4
        var step = new ForwardBatch(blockTokens);
        step.Add([0], 9, tableA, LogitsWanted.Last);             // A decodes position 9 (its third block)
        step.Add(new int[3], 5, tableB, LogitsWanted.Last);      // B continues at 5..7 (its second block)
        step.Add([0], 0, tableC, LogitsWanted.Last);             // C starts
        var promptKeys = TestWeights.Random(prompts.Rows * keyWidth, 40, 2f);
        var promptValues = TestWeights.Random(prompts.Rows * valueWidth, 41);
        var stepKeys = TestWeights.Random(step.Rows * keyWidth, 42, 2f);
        var stepValues = TestWeights.Random(step.Rows * valueWidth, 43);
        var queries = TestWeights.Random(step.Rows * heads * headDim, 44, 2f);
        var shape = new KvPoolShape(2, blocks, blockTokens, keyWidth, valueWidth, type);

        float[] Run(IBackend backend, Action<KvBlockPool, ActivationBuffer>? after = null)
        {
            using var pool = backend.CreateKvPool(shape);
            backend.StoreKv(pool, 1, prompts, Upload(backend, promptKeys), Upload(backend, promptValues));
            backend.StoreKv(pool, 1, step, Upload(backend, stepKeys), Upload(backend, stepValues));
            var q = Upload(backend, queries);
            var output = backend.Allocate("output", step.Rows * heads * valueDim);
            backend.Attention(q, pool, 1, step, heads, kvHeads, headDim, valueDim, output);
            var result = new float[output.Length];
            backend.Read(output, 0, result);
            after?.Invoke(pool, q);
            return result;
        }

        float[] alone = [];
        var gpu = Run(_gpu, (pool, q) =>
        {
            // B's three rows on their own: rows 1..3 of the step's queries, attending over the same pool.
            var onlyB = new ForwardBatch(blockTokens);
            onlyB.Add(new int[3], 5, tableB, LogitsWanted.Last);
            var qB = _gpu.Allocate("qB", 3 * heads * headDim);
            _gpu.Copy(q, heads * headDim, qB, 0, 3 * heads * headDim);
            var output = _gpu.Allocate("outB", 3 * heads * valueDim);
            _gpu.Attention(qB, pool, 1, onlyB, heads, kvHeads, headDim, valueDim, output);
            alone = new float[output.Length];
            _gpu.Read(output, 0, alone);
        });
        var cpu = Run(_cpu);

        gpu.Length.Should().Be(cpu.Length);
        for (int i = 0; i < gpu.Length; i++) gpu[i].Should().BeApproximately(cpu[i], 1e-5f, $"element {i} ({type})");
        alone.Should().Equal(gpu.AsSpan(heads * valueDim, 3 * heads * valueDim).ToArray(), "a sequence's rows do not depend on the rest of the batch");
    }

    [Fact]
    public void Rope_rotates_each_row_at_its_own_sequences_position()
    {
        const int heads = 3, headDim = 8;
        var rope = new RopeParameters(headDim, headDim, RopeStyle.NeoX, 10000, new RopeScaling(RopeScalingType.None, 1, 0), null);
        var batch = new ForwardBatch(4);
        batch.Add([0], 211, Enumerable.Range(0, 53).ToArray(), LogitsWanted.Last);
        batch.Add(new int[3], 2, [60, 62], LogitsWanted.Last);
        batch.Add([0], 0, [61], LogitsWanted.Last);
        var x = TestWeights.Random(batch.Rows * heads * headDim, 45);

        float[] Run(IBackend backend)
        {
            var buffer = Upload(backend, x);
            backend.Rope(buffer, batch, heads, rope);
            var result = new float[x.Length];
            backend.Read(buffer, 0, result);
            return result;
        }

        var gpu = Run(_gpu);
        var cpu = Run(_cpu);
        for (int i = 0; i < gpu.Length; i++) gpu[i].Should().BeApproximately(cpu[i], 1e-4f, $"element {i}");
        gpu.AsSpan((batch.Rows - 1) * heads * headDim).SequenceEqual(x.AsSpan((batch.Rows - 1) * heads * headDim))
            .Should().BeTrue("position 0 rotates by nothing");
    }

    [Fact]
    public void A_pool_holds_its_whole_size_in_device_memory_until_disposed()
    {
        long before = _gpu.DeviceBytesInUse, reserved = _gpu.Memory.Used;
        var shape = new KvPoolShape(3, 10, 8, 64, 32, KvElementType.Q8_0);
        var pool = _gpu.CreateKvPool(shape);
        pool.Bytes.Should().Be(10 * shape.BlockBytes);
        _gpu.DeviceBytesInUse.Should().Be(before + pool.Bytes);
        _gpu.Memory.Used.Should().Be(reserved + pool.Bytes);
        _gpu.LivePools.Should().Be(1);
        pool.Dispose();
        pool.Bytes.Should().Be(0);
        _gpu.DeviceBytesInUse.Should().Be(before);
        _gpu.Memory.Used.Should().Be(reserved);
        _gpu.LivePools.Should().Be(0);
    }

    [Fact]
    public void A_pool_that_does_not_fit_is_refused_with_what_to_do()
    {
        // Leave 1 MiB of the device's budget free, then ask for a pool of 2 MiB.
        long free = _gpu.Memory.Capacity - _gpu.Memory.Used - (1 << 20);
        _gpu.Memory.Reserve(free, "the test's filler");
        try
        {
            var shape = new KvPoolShape(2, 16, 32, 512, 512, KvElementType.F16); // 16 blocks of 128 KiB
            long before = _gpu.DeviceBytesInUse;
            FluentActions.Invoking(() => _gpu.CreateKvPool(shape)).Should().Throw<DeviceMemoryException>()
                .WithMessage("the KV cache for 512 tokens (2 layers, f16) needs 2 MiB of device memory, but * are already taken*--ctx*")
                .Which.RequiredBytes.Should().Be(16 * shape.BlockBytes);
            _gpu.LivePools.Should().Be(0);
            _gpu.DeviceBytesInUse.Should().Be(before);
        }
        finally
        {
            _gpu.Memory.Release(free);
        }
    }

    [Fact]
    public void Operations_refuse_a_batch_addressing_blocks_outside_the_pool()
    {
        using var pool = _gpu.CreateKvPool(new KvPoolShape(1, 2, 4, 8, 8, KvElementType.F32));
        var batch = new ForwardBatch(4);
        batch.Add([0], 5, [0, 2], LogitsWanted.Last);
        var k = _gpu.Allocate("k", 8);
        FluentActions.Invoking(() => _gpu.StoreKv(pool, 0, batch, k, k)).Should().Throw<ArgumentOutOfRangeException>().WithMessage("*block 2*2 blocks*");
    }
}
