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
