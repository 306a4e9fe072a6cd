using BenchmarkDotNet.Attributes;
using Engine.Formats.Gguf;
using Engine.Tokenizers;

namespace Engine.Perf;

/// <summary>Encoding 10 KB of text with a SentencePiece and a byte-level BPE vocabulary from ../shared (set
/// ENGINE_SHARED_DIR when the folder is not beside the repository).</summary>
[MemoryDiagnoser]
public class TokenizerBenchmarks
{
    [Params("ggml-vocab-llama-spm.gguf", "ggml-vocab-qwen2.gguf")] public string Vocab = "";
    ITokenizer _tokenizer = null!;
    string _text = "";

    [GlobalSetup]
    public void Setup()
    {
        var shared = Environment.GetEnvironmentVariable("ENGINE_SHARED_DIR") ?? Path.Combine(AppContext.BaseDirectory, "../../../../../shared");
        using var file = GgufFile.Open(Path.Combine(shared, "models", "ggml-vocab", Vocab));
        _tokenizer = TokenizerFactory.FromGguf(file.Metadata);
        var random = new Random(1);
        var sb = new System.Text.StringBuilder();
        while (sb.Length < 10_000) sb.Append(' ').Append(new string((char)('a' + random.Next(26)), random.Next(1, 9))).Append(" the llama.cpp 🦙");
        _text = sb.ToString();
    }

    [Benchmark]
    public int Encode10KB() => _tokenizer.Encode(_text, true, true).Length;
}
