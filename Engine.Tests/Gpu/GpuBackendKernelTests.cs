using Engine.Backends;
using Engine.Backends.Cpu;
using Engine.Gpu;
using Engine.Models;

namespace Engine.Tests.Gpu;

/// <summary>Each operation of the GPU backend against the CPU backend on the same inputs (tiny, odd shapes: the
/// tests run on ILGPU's CPU accelerator by default). Tolerances, all absolute on values of order 1:
///   element-wise ops (add, bias, SwiGLU, copies): 1e-6 (same float operations, exp aside);
///   RMSNorm: 1e-5 (float tree sum vs the CPU's double sum);
///   RoPE: 1e-4 at positions up to 300 (the device multiplies position by a per-pair rate once, the CPU steps
///   the angle pair by pair; both round differently by a few ulps of an angle of up to ~300 rad);
///   attention: 1e-5 (online softmax, normalized once at the end).</summary>
[Collection(GpuCollection.Name)]
public sealed class GpuBackendKernelTests(GpuTestDevice device) : IDisposable
{
    readonly GpuBackend _gpu = new(device.Device, ownsDevice: false);
    readonly CpuBackend _cpu = new(1);

    public void Dispose() { _gpu.Dispose(); _cpu.Dispose(); }

    /// <summary>Runs `op` on both backends over buffers initialized with `inputs`, returns buffer `result` of each.</summary>
    (float[] Gpu, float[] Cpu) Both(float[][] inputs, int result, Action<IBackend, ActivationBuffer[]> op)
    {
        float[] Run(IBackend be)
        {
            var buffers = inputs.Select((values, i) => { var b = be.Allocate($"b{i}", values.Length); be.Write(b, 0, values); return b; }).ToArray();
            op(be, buffers);
            var output = new float[inputs[result].Length];
            be.Read(buffers[result], 0, output);
            return output;
        }
        return (Run(_gpu), Run(_cpu));
    }

    static void ShouldAgree(float[] gpu, float[] cpu, double tolerance)
    {
        gpu.Length.Should().Be(cpu.Length);
        for (int i = 0; i < gpu.Length; i++) gpu[i].Should().BeApproximately(cpu[i], (float)tolerance, $"element {i}");
    }

    [Fact]
    public void RmsNorm_matches_including_in_place_per_head()
    {
        var weight = new WeightVector("w", TestWeights.Random(37, seed: 4));
        var (gpu, cpu) = Both([TestWeights.Random(3 * 37, 5, 3f), new float[3 * 37]], 1, (be, b) => be.RmsNorm(b[0], weight, 1e-6f, 3, b[1]));
        ShouldAgree(gpu, cpu, 1e-5);

        var headWeight = new WeightVector("hw", TestWeights.Random(6, seed: 6));
        (gpu, cpu) = Both([TestWeights.Random(4 * 6, 7)], 0, (be, b) => be.RmsNorm(b[0], headWeight, 1e-5f, 4, b[0]));
        ShouldAgree(gpu, cpu, 1e-5);
    }

    [Fact]
    public void Elementwise_operations_match()
    {
        var bias = new WeightVector("bias", TestWeights.Random(7, seed: 8));
        var (gpu, cpu) = Both([TestWeights.Random(21, 9)], 0, (be, b) => be.AddBias(b[0], bias, 3));
        ShouldAgree(gpu, cpu, 1e-6);
        (gpu, cpu) = Both([TestWeights.Random(23, 10), TestWeights.Random(23, 11)], 0, (be, b) => be.Add(b[0], b[1], 19));
        ShouldAgree(gpu, cpu, 1e-6);
        (gpu, cpu) = Both([TestWeights.Random(23, 12, 6f), TestWeights.Random(23, 13), new float[23]], 2, (be, b) => be.SwiGlu(b[0], b[1], 23, b[2]));
        ShouldAgree(gpu, cpu, 1e-6);
        (gpu, cpu) = Both([TestWeights.Random(23, 14)], 0, (be, b) => be.Clear(b[0], 17));
        ShouldAgree(gpu, cpu, 0);
        (gpu, cpu) = Both([TestWeights.Random(23, 15), TestWeights.Random(17, 16)], 1, (be, b) => be.Copy(b[0], 4, b[1], 3, 11));
        ShouldAgree(gpu, cpu, 0);
    }

    /// <summary>Style, rotated dimensions, scaling and whether there are frequency factors; the style and scaling by
    /// name, since their enums are internal and a public theory cannot take them.</summary>
    public static TheoryData<string, int, string, bool> RopeVariants => new()
    {
        { nameof(RopeStyle.Normal), 8, nameof(RopeScalingType.None), false },
        { nameof(RopeStyle.NeoX), 8, nameof(RopeScalingType.None), false },
        { nameof(RopeStyle.NeoX), 4, nameof(RopeScalingType.None), false },   // partial rotation: the last dims pass through
        { nameof(RopeStyle.Normal), 8, nameof(RopeScalingType.Linear), false },
        { nameof(RopeStyle.NeoX), 8, nameof(RopeScalingType.Yarn), false },
        { nameof(RopeStyle.Normal), 8, nameof(RopeScalingType.Llama3), true }, // llama 3.1: per-pair frequency factors
    };

    [Theory]
    [MemberData(nameof(RopeVariants))]
    public void Rope_matches_every_style_and_scaling(string styleName, int rotatedDims, string scalingName, bool factors)
    {
        var style = Enum.Parse<RopeStyle>(styleName);
        var scaling = Enum.Parse<RopeScalingType>(scalingName);
        const int headDim = 8, heads = 3, rows = 4;
        var scalingParameters = new RopeScaling(scaling, Factor: 4, OriginalContextLength: 64);
        var rope = new RopeParameters(headDim, rotatedDims, style, 10000, scalingParameters, factors ? [1f, 2.5f, 8f, 1f] : null);
        foreach (int start in new[] { 0, 297 }) // late positions: angles of hundreds of radians
        {
            var batch = new ForwardBatch(Llama.DefaultBlockTokens);
            batch.Add(new int[rows], start, new int[(start + rows + Llama.DefaultBlockTokens - 1) / Llama.DefaultBlockTokens], LogitsWanted.None);
            var (gpu, cpu) = Both([TestWeights.Random(rows * heads * headDim, 20)], 0, (be, b) => be.Rope(b[0], batch, heads, rope));
            ShouldAgree(gpu, cpu, 1e-4);
        }
    }

    [Theory]
    [InlineData(0, 5, 4, 2)]   // a prompt from the start, grouped-query (2 query heads per KV head)
    [InlineData(5, 1, 4, 2)]   // one decode step after it
    [InlineData(3, 4, 4, 4)]   // a prompt continuing a cache, plain multi-head
    [InlineData(30, 3, 6, 1)]  // a context longer than one tile of keys, multi-query
    public void Attention_matches_with_grouped_query_heads(int start, int rows, int heads, int kvHeads)
    {
        const int headDim = 20, valueDim = 12;
        int context = start + rows, keyWidth = kvHeads * headDim, valueWidth = kvHeads * valueDim;
        var keys = TestWeights.Random(context * keyWidth, 21, 2f);
        var values = TestWeights.Random(context * valueWidth, 22);
        var queries = TestWeights.Random(rows * heads * headDim, 23, 2f);
        // Blocks of 4 positions, out of order in the pool: the block table does the addressing.
        const int blockTokens = 4;
        int blocks = (context + blockTokens - 1) / blockTokens;
        var table = Enumerable.Range(0, blocks).Reverse().ToArray();
        var store = new ForwardBatch(blockTokens);
        store.Add(new int[context], 0, table, LogitsWanted.None);
        var attend = new ForwardBatch(blockTokens);
        attend.Add(new int[rows], start, table, LogitsWanted.None);
        var (gpu, cpu) = Both([keys, values, queries, new float[rows * heads * valueDim]], 3, (be, b) =>
        {
            using var pool = be.CreateKvPool(new KvPoolShape(2, blocks, blockTokens, keyWidth, valueWidth, KvElementType.F32));
            be.StoreKv(pool, 1, store, b[0], b[1]);
            be.Attention(b[2], pool, 1, attend, heads, kvHeads, headDim, valueDim, b[3]);
        });
        ShouldAgree(gpu, cpu, 1e-5);
    }
}
