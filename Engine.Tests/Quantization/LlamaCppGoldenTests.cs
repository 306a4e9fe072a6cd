using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Tests.Support;
using global::Engine.Quantization;

namespace Engine.Tests.Quantization;

/// <summary>
/// Golden checks against files llama.cpp wrote: the fixture models in ../shared/fixtures were quantized by
/// llama-quantize --pure from fx-llama-F32.gguf without an importance matrix, which runs exactly the
/// quantize_row_*_ref functions. Our reference quantizers must reproduce those bytes, and our dequantized
/// rows must be what llama.cpp's types describe. Skipped, with the reason shown, when ../shared is absent.
/// </summary>
public class LlamaCppGoldenTests
{
    public static TheoryData<GgmlType> Types() => new()
    {
        GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q5_0, GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.Q4_1, GgmlType.Q5_1, GgmlType.Q5_K,
        GgmlType.Q2_K, GgmlType.Q3_K,
    };

    [SharedTheory, MemberData(nameof(Types))]
    public void Reference_quantizer_reproduces_llama_quantize_bytes(GgmlType t)
    {
        var srcPath = TestPaths.Shared("fixtures", "fx-llama-F32.gguf");
        var qPath = TestPaths.Shared("fixtures", $"fx-llama-{t}.gguf");
        srcPath.Should().NotBeNull(); qPath.Should().NotBeNull();

        using var src = GgufFile.Open(srcPath!);
        using var quant = GgufFile.Open(qPath!);
        var f = RowFormats.For(t);
        var q = RowFormats.QuantizerFor(t)!;
        int checkedTensors = 0;
        foreach (var info in quant.Tensors)
        {
            var qt = quant.GetTensor(info.Name);
            if (qt.Type != t) continue;
            var ft = src.GetTensor(info.Name);
            ft.Type.Should().Be(GgmlType.F32);
            int k = (int)qt.RowLength;
            int rowBytes = (int)(k / f.BlockSize * f.BytesPerBlock);
            var floats = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(ft.Bytes);
            var ours = new byte[rowBytes];
            var back = new float[k];
            var theirs = new float[k];
            // A few rows per tensor keep the test fast; rows differ only in data.
            for (long r = 0; r < qt.RowCount; r += Math.Max(1, qt.RowCount / 7))
            {
                var expected = qt.Bytes.Slice((int)(r * rowBytes), rowBytes);
                q.QuantizeRowReference(floats.Slice((int)(r * k), k), ours);
                if (!expected.SequenceEqual(ours))
                {
                    int at = 0;
                    while (expected[at] == ours[at]) at++;
                    Assert.Fail($"{t} {info.Name} row {r}: first differing byte {at} (block {at / f.BytesPerBlock}, offset {at % f.BytesPerBlock}): llama.cpp {expected[at]} ours {ours[at]}");
                }
                f.DequantizeRow(expected, back);
                f.DequantizeRowReference(expected, theirs);
                back.Should().Equal(theirs);
            }
            checkedTensors++;
        }
        checkedTensors.Should().BeGreaterThan(0);
    }
}
