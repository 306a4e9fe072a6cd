using Engine.Backends.Cpu;
using Engine.Formats;
using Engine.Models;
using Engine.Tests.Support;

namespace Engine.Tests.Gptq;

/// <summary>A GPTQ / AWQ folder holds one copy of its weights, as a GGUF does: a layer's Q4_0 rows are computed when
/// first read (a deferred region), and the CPU backend's 8-row repack drops them once it holds its own copy.</summary>
public class GptqMemoryTests
{
    [Fact]
    public unsafe void A_deferred_region_is_made_on_first_read_dropped_and_made_again()
    {
        int made = 0;
        using var region = MappedRegion.Deferred("test", 64, dst =>
        {
            made++;
            for (int i = 0; i < 64; i++) ((byte*)dst)[i] = (byte)(i * 3);
        });
        region.HoldsDeferredBytes.Should().BeFalse();
        made.Should().Be(0, "nothing is computed before it is read");
        var bytes = new byte[8];
        region.Read(10, bytes);
        bytes.Should().Equal(30, 33, 36, 39, 42, 45, 48, 51);
        region.Span(0, 64)[63].Should().Be(unchecked((byte)189));
        made.Should().Be(1);
        region.HoldsDeferredBytes.Should().BeTrue();
        region.DropDeferred();
        region.HoldsDeferredBytes.Should().BeFalse();
        region.Read(10, bytes);
        bytes[0].Should().Be(30);
        made.Should().Be(2);
        region.Dispose();
        FluentActions.Invoking(() => region.Read(0, bytes)).Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public void A_failed_computation_leaves_the_region_empty()
    {
        using var region = MappedRegion.Deferred("test", 16, _ => throw new InvalidDataException("bad"));
        FluentActions.Invoking(() => region.Read(0, new byte[4])).Should().Throw<InvalidDataException>();
        region.HoldsDeferredBytes.Should().BeFalse();
    }

    [Fact]
    public unsafe void A_range_producer_serves_reads_without_making_the_whole_region()
    {
        int made = 0, ranges = 0;
        using var region = MappedRegion.Deferred("test", 64, dst =>
        {
            made++;
            for (int i = 0; i < 64; i++) ((byte*)dst)[i] = (byte)(i * 3);
        }, (offset, destination) =>
        {
            if (offset % 8 != 0) return false; // only aligned ranges, as whole rows
            ranges++;
            for (int i = 0; i < destination.Length; i++) destination[i] = (byte)((offset + i) * 3);
            return true;
        });
        var bytes = new byte[8];
        region.Read(16, bytes);
        bytes.Should().Equal(48, 51, 54, 57, 60, 63, 66, 69);
        (made, ranges).Should().Be((0, 1));
        region.HoldsDeferredBytes.Should().BeFalse("a range was made, not the region");
        region.Read(10, bytes); // refused by the range producer: the whole region is made
        bytes[0].Should().Be(30);
        (made, ranges).Should().Be((1, 1));
        region.Read(16, bytes); // in memory now: read from there
        (made, ranges).Should().Be((1, 1));
    }

    [SharedTheory]
    [InlineData("fx-llama-gptq-4bit-g128")]
    [InlineData("fx-llama-gptq-4bit-g32-actorder")]
    [InlineData("fx-llama-awq-4bit-g128")]
    public void Whole_rows_read_in_chunks_are_the_rows_of_the_whole_matrix(string name)
    {
        using var model = GptqFixtureTests.Open(name, floatActivations: false, repack: false);
        foreach (var m in model.Model.Weights.Matrices().Where(m => m.Quantized is not null))
        {
            m.View.DropComputedBytes();
            int rows = Math.Min(m.Rows, 24), first = m.Rows - rows;
            var chunk = new byte[rows * m.RowBytes];
            m.View.ReadBytes(first * m.RowBytes, chunk);
            m.View.HoldsComputedBytes.Should().BeFalse($"{m.Name}: whole rows are made alone");
            m.View.Bytes.Slice((int)(first * m.RowBytes), chunk.Length).SequenceEqual(chunk).Should().BeTrue(m.Name);
        }
    }

    [SharedTheory]
    [InlineData("fx-llama-gptq-4bit-g128")]
    [InlineData("fx-llama-gptq-4bit-g32-actorder")]
    public void After_the_cpu_repack_no_q4_0_rows_stay_in_memory(string name)
    {
        using var model = GptqFixtureTests.Open(name, floatActivations: false, repack: true);
        var backend = (CpuBackend)model.Model.Backend;
        if (!backend.RepacksWeights) return; // no AVX2: the rows are read in place, computed once
        var quantized = model.Model.Weights.Matrices().Where(m => m.Quantized is not null).ToList();
        quantized.Should().HaveCount(14);
        backend.RepackedMatrices.Should().BeGreaterThanOrEqualTo(14);
        var golden = GoldenCase.LoadFixture(GptqFixtureTests.FixtureRoot, name);
        GptqFixtureTests.PromptLogits(model.Model, golden);
        quantized.Should().OnlyContain(m => !m.View.HoldsComputedBytes, "the matmuls read the repacked copy");

        using var inPlace = GptqFixtureTests.Open(name, floatActivations: false, repack: false);
        GptqFixtureTests.PromptLogits(inPlace.Model, golden);
        inPlace.Model.Weights.Matrices().Where(m => m.Quantized is not null).Should().OnlyContain(m => m.View.HoldsComputedBytes,
            "without the repack the matmuls read the Q4_0 rows, made once");
    }
}
