using System.Security.Cryptography;
using Engine.Convert;
using Engine.Convert.Gguf;
using Engine.Convert.Presets;
using Engine.Convert.Quant;
using Engine.Formats.Gguf;
using Engine.Tests.Support;

namespace Engine.Tests.Convert;

/// <summary>
/// A synthesized quantized file holds the very tensors llama.cpp's llama-quantize makes from the synthesized F16 file
/// (same names, order, types and bytes), because the pool values are F16-exact and the engine's quantizers port
/// quantize_row_*_ref. The hashes (sha256 of every tensor's bytes in file order, first 16 hex digits) are of the
/// files llama.cpp de3ff81 wrote: `engine-convert synth --preset P --type F16 --vocab fx-qwen3-F32.gguf --pool 65536`,
/// then `llama_oracle.py quantize P-F16.gguf OUT TYPE`. This pins the Q4_K_M mix (fallbacks and the eight-expert
/// rules included) and every quantizer it uses.
/// </summary>
public sealed class LlamaQuantizeParityTests : IDisposable
{
    readonly string _folder = Path.Combine(Path.GetTempPath(), "engine-convert-parity-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        if (Directory.Exists(_folder)) Directory.Delete(_folder, recursive: true);
    }

    [Theory]
    [InlineData("test-llama", "BF16", "4f566b7c3481ec73")]
    [InlineData("test-llama", "Q8_0", "461079d261b1fae2")]
    [InlineData("test-llama", "Q4_0", "941e0b9b6fd17441")]
    [InlineData("test-llama", "Q4_K_M", "60cdb92de6f86df5")]
    [InlineData("test-qwen2", "BF16", "1033fd0b86283936")]
    [InlineData("test-qwen2", "Q8_0", "5562290c2ffbf6de")]
    [InlineData("test-qwen2", "Q4_0", "70c008bdfbbc4652")]
    [InlineData("test-qwen2", "Q4_K_M", "f022fdc64a1fb7c5")]
    [InlineData("test-qwen3", "BF16", "53ede0d43c7dff96")]
    [InlineData("test-qwen3", "Q8_0", "b59141e98f37baf1")]
    [InlineData("test-qwen3", "Q4_0", "87a1516d0194f8cf")]
    [InlineData("test-qwen3", "Q4_K_M", "2f915ae3c1f4676f")]
    [InlineData("test-qwen3moe", "BF16", "00eb7c246d392869")]
    [InlineData("test-qwen3moe", "Q8_0", "97a40ec7425ef76a")]
    [InlineData("test-qwen3moe", "Q4_0", "9fc15bfaa5d70a22")]
    [InlineData("test-qwen3moe", "Q4_K_M", "6f137bf89d7f8bbe")]
    public void Tensors_are_those_llama_quantize_makes_of_the_F16_file(string preset, string type, string llamaCppHash)
    {
        var path = Path.Combine(_folder, $"{preset}-{type}.gguf");
        var options = new SynthOptions(PresetCatalog.Find(preset)!, OutputType.Find(type)!, path)
        {
            VocabPath = TestPaths.Repo("Engine.Tests", "Fixtures", "fx-qwen3-F32.gguf"),
            PoolLength = 1 << 16,
        };
        GgufSynthesizer.Write(options, log: null);
        TensorHash(path).Should().Be(llamaCppHash);
    }

    static string TensorHash(string path)
    {
        using var file = GgufFile.Open(path);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var info in file.Tensors) sha.AppendData(file.GetTensor(info.Name).Bytes);
        return System.Convert.ToHexStringLower(sha.GetHashAndReset())[..16];
    }
}
