using Engine.Gpu.Kernels.Quantized;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;

namespace Engine.Tests.Gpu.Quantized;

/// <summary>The invariant the prompt kernel relies on (see IBlockDecoder): pieces [16m, 16m + 16) of a block
/// cover exactly columns [128m, 128m + 128) (or the whole 32-column block), each column once. Checked on the host
/// by calling each decoder's Decode on a block in a CPU accelerator's memory (a property of the code, so it needs
/// no GPU whatever ENGINE_GPU_TEST_DEVICE says).</summary>
public sealed class PieceCoverageTests : IDisposable
{
    readonly Context _context = Context.Create(b => b.CPU());
    readonly Accelerator _accelerator;

    public PieceCoverageTests() => _accelerator = _context.CreateCPUAccelerator(0);

    public void Dispose()
    {
        _accelerator.Dispose();
        _context.Dispose();
    }

    [Fact]
    public void EveryDecoderCoversEachColumnOnceWithinItsStep()
    {
        Check<Q8_0Decoder>();
        Check<Q4_0Decoder>();
        Check<Q5_0Decoder>();
        Check<Q4_1Decoder>();
        Check<Q5_1Decoder>();
        Check<IQ4_NLDecoder>();
        Check<Q2_KDecoder>();
        Check<Q3_KDecoder>();
        Check<Q4_KDecoder>();
        Check<Q5_KDecoder>();
        Check<Q6_KDecoder>();
        Check<IQ4_XSDecoder>();
    }

    void Check<TDecoder>() where TDecoder : struct, IBlockDecoder
    {
        using var block = _accelerator.Allocate1D<uint>(TDecoder.BlockWords);
        block.MemSetToZero();
        var seen = new int[TDecoder.BlockElements];
        for (int piece = 0; piece < TDecoder.BlockElements / 8; piece++)
        {
            var p = TDecoder.Decode(block.View, 0, piece);
            int step = piece / 16;
            foreach (int first in new[] { p.ColA, p.ColB })
                for (int c = first; c < first + 4; c++)
                {
                    (c / 128).Should().Be(step, $"{TDecoder.Type} piece {piece} covers column {c}");
                    seen[c]++;
                }
        }
        seen.Should().OnlyContain(n => n == 1, $"{TDecoder.Type} covers every column exactly once");
    }
}
