using System.Runtime.InteropServices;
using Engine.Backends.Cpu;
using Engine.Formats;
using Engine.Models;
using Engine.Quantization.Repacked;
using Engine.Tests.Quantization;
using global::Engine.Quantization;

namespace Engine.Tests.Backends;

/// <summary>
/// Batch invariance of the CPU matmul: the engine runs many sequences in one forward pass and promises each of
/// them the logits it would get alone, so y[t] = W x[t] must have the same bits whatever the number of tokens in
/// the call and wherever token t sits in it (first, inside a group of four, in the remainder after the groups).
/// Checked through <see cref="MatMulKernels"/> itself (activation quantization, row tiles, the split over
/// workers, the repacked dispatch) for every weight type the CPU backend supports, with the repacked 8-row
/// layouts on and off. Runs on whichever kernels this process has (CI repeats the suite without AVX-512, AVX2
/// and all hardware intrinsics).
/// </summary>
public class BatchInvarianceTests
{
    /// <summary>Batch sizes around every grouping the kernels use: single tokens, the 4- and 8-token tiles and
    /// their remainders, and a prompt-sized batch.</summary>
    static readonly int[] BatchSizes = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 64];
    /// <summary>More distinct tokens than the largest batch, so a token lands at many positions.</summary>
    const int PoolTokens = 70;
    /// <summary>40 rows: whole groups of 8 for the repacked layouts, and two full row tiles of 16 plus a short one.</summary>
    const int Rows = 48; // whole groups of 16 rows (and of 8)

    public static TheoryData<GgmlType, bool> Cases()
    {
        var d = new TheoryData<GgmlType, bool>();
        foreach (var f in RowFormats.Supported)
        {
            d.Add(f.Type, false);
            if (RepackedFormats.Repacks(f.Type)) d.Add(f.Type, true);
        }
        return d;
    }

    [Theory, MemberData(nameof(Cases))]
    public void Every_token_gets_its_one_token_bits_in_any_batch(GgmlType type, bool repacked)
    {
        var format = RowFormats.For(type);
        int unit = Math.Max(format.BlockSize, format.ActivationType.Info().BlockSize);
        // Float types (blocks of 1) also at a length that leaves a tail after every vector loop.
        foreach (int k in unit == 1 ? new[] { 512, 131 } : [Math.Max(512, unit * 2)])
            if (!repacked || RepackedFormats.For(type, Rows, k) is not null) // the F16 layout takes whole 16-half blocks only
                CheckLength(type, repacked, k);
    }

    static void CheckLength(GgmlType type, bool repacked, int k)
    {
        var rng = new Random(17 + (int)type * 31 + k);
        var weights = RandomMatrix(type, Rows, k, rng);
        var pool = new float[PoolTokens * k];
        for (int t = 0; t < PoolTokens; t++) QuantTestData.RandomActivations(k, rng).CopyTo(pool, t * k);

        using var split = new WorkSplit(2);
        using var packed = new RepackedWeights();
        var kernels = new MatMulKernels(split);
        if (repacked)
        {
            packed.Add([weights], 1);
            packed.Count.Should().Be(1, $"{type} with {Rows} x {k} is eligible for its repacked layout");
            kernels.Repacked = packed;
        }

        // Each token alone: the decode form.
        var alone = new float[PoolTokens * Rows];
        var one = new float[Rows];
        for (int t = 0; t < PoolTokens; t++)
        {
            kernels.MatMul(weights, pool[(t * k)..((t + 1) * k)], 1, one);
            one.CopyTo(alone, t * Rows);
        }

        // The same answers from one worker: the split of rows over workers must not matter either.
        using (var single = new WorkSplit(1))
        {
            var serial = new MatMulKernels(single) { Repacked = kernels.Repacked };
            for (int t = 0; t < PoolTokens; t += 23)
            {
                serial.MatMul(weights, pool[(t * k)..((t + 1) * k)], 1, one);
                for (int r = 0; r < Rows; r++)
                    Same(one[r], alone[t * Rows + r]).Should().BeTrue($"{type} k={k} token {t} row {r}: one worker {one[r]}, two {alone[t * Rows + r]}");
            }
        }

        foreach (int tokens in BatchSizes)
            foreach (int first in new[] { 0, 1, 3, PoolTokens - tokens })
            {
                if (first + tokens > PoolTokens) continue;
                var y = new float[tokens * Rows];
                kernels.MatMul(weights, pool[(first * k)..((first + tokens) * k)], tokens, y);
                for (int i = 0; i < tokens; i++)
                    for (int r = 0; r < Rows; r++)
                    {
                        float batched = y[i * Rows + r], single = alone[(first + i) * Rows + r];
                        if (!Same(batched, single))
                            Assert.Fail($"{type} k={k} repacked={repacked}: token {first + i} at position {i} of a batch of {tokens}, row {r}: " +
                                $"{batched} (0x{BitConverter.SingleToUInt32Bits(batched):x8}) batched, {single} (0x{BitConverter.SingleToUInt32Bits(single):x8}) alone");
                    }
            }
    }

    static bool Same(float a, float b) => BitConverter.SingleToUInt32Bits(a) == BitConverter.SingleToUInt32Bits(b);

    /// <summary>A rows x k matrix of random rows of `type` in memory, as the backend sees a mapped tensor. F16 rows
    /// also get some subnormal halves, which the kernels convert on a slower exact path.</summary>
    static WeightMatrix RandomMatrix(GgmlType type, int rows, int k, Random rng)
    {
        var first = QuantTestData.RandomRow(type, k, rng);
        var bytes = new byte[first.Length * rows];
        first.CopyTo(bytes, 0);
        for (int r = 1; r < rows; r++) QuantTestData.RandomRow(type, k, rng).CopyTo(bytes, r * first.Length);
        if (type == GgmlType.F16)
        {
            var halves = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
            for (int i = 0; i < halves.Length; i += 1 + rng.Next(200)) halves[i] = (ushort)(rng.Next(1, 0x400) | (rng.Next(2) << 15));
        }
        var name = $"{type}.invariance";
        var view = new TensorView(name, type, [k, rows], (long)rows * k, bytes.Length, 0, MappedRegion.FromBytes(bytes, name));
        return new WeightMatrix(name, view);
    }
}
