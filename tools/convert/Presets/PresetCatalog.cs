namespace Engine.Convert.Presets;

/// <summary>The shapes engine-convert can synthesize. Numbers are the real models' config.json values; context
/// lengths are the instruct releases' (Qwen2.5 base configs say 131072, instruct 32768).</summary>
public static class PresetCatalog
{
    const string QwenVocab = "ggml-vocab-qwen2.gguf";      // Qwen2/2.5/3 BPE
    const string Llama3Vocab = "ggml-vocab-llama-bpe.gguf"; // Llama 3 BPE, 128,256 ids
    const string Llama2Vocab = "ggml-vocab-llama-spm.gguf"; // Llama 2 SentencePiece, 32,000 ids

    public static IReadOnlyList<ModelPreset> All { get; } =
    [
        new()
        {
            Name = "qwen2.5-0.5b", Architecture = "qwen2", ShapeOf = "Qwen/Qwen2.5-0.5B-Instruct",
            Hidden = 896, Layers = 24, Heads = 14, KvHeads = 2, FeedForward = 4864, VocabSize = 151936, VocabFile = QwenVocab,
            ContextLength = 32768, RopeTheta = 1e6, RmsEpsilon = 1e-6, TiedOutput = true,
        },
        new()
        {
            Name = "qwen2.5-1.5b", Architecture = "qwen2", ShapeOf = "Qwen/Qwen2.5-1.5B-Instruct",
            Hidden = 1536, Layers = 28, Heads = 12, KvHeads = 2, FeedForward = 8960, VocabSize = 151936, VocabFile = QwenVocab,
            ContextLength = 32768, RopeTheta = 1e6, RmsEpsilon = 1e-6, TiedOutput = true,
        },
        new()
        {
            Name = "qwen2.5-7b", Architecture = "qwen2", ShapeOf = "Qwen/Qwen2.5-7B-Instruct",
            Hidden = 3584, Layers = 28, Heads = 28, KvHeads = 4, FeedForward = 18944, VocabSize = 152064, VocabFile = QwenVocab,
            ContextLength = 32768, RopeTheta = 1e6, RmsEpsilon = 1e-6, TiedOutput = false,
        },
        new()
        {
            Name = "qwen3-0.6b", Architecture = "qwen3", ShapeOf = "Qwen/Qwen3-0.6B",
            Hidden = 1024, Layers = 28, Heads = 16, KvHeads = 8, ExplicitHeadDim = 128, FeedForward = 3072, VocabSize = 151936,
            VocabFile = QwenVocab, ContextLength = 40960, RopeTheta = 1e6, RmsEpsilon = 1e-6, TiedOutput = true,
        },
        new()
        {
            Name = "llama3.2-1b", Architecture = "llama", ShapeOf = "meta-llama/Llama-3.2-1B-Instruct",
            Hidden = 2048, Layers = 16, Heads = 32, KvHeads = 8, FeedForward = 8192, VocabSize = 128256, VocabFile = Llama3Vocab,
            ContextLength = 131072, RopeTheta = 500000, RmsEpsilon = 1e-5, TiedOutput = true,
            RopeScaling = new Llama3RopeScaling(Factor: 32, LowFrequencyFactor: 1, HighFrequencyFactor: 4, OriginalContextLength: 8192),
        },
        new()
        {
            Name = "llama3.1-8b", Architecture = "llama", ShapeOf = "meta-llama/Llama-3.1-8B-Instruct",
            Hidden = 4096, Layers = 32, Heads = 32, KvHeads = 8, FeedForward = 14336, VocabSize = 128256, VocabFile = Llama3Vocab,
            ContextLength = 131072, RopeTheta = 500000, RmsEpsilon = 1e-5, TiedOutput = false,
            RopeScaling = new Llama3RopeScaling(Factor: 8, LowFrequencyFactor: 1, HighFrequencyFactor: 4, OriginalContextLength: 8192),
        },
        new()
        {
            // Llama 3 (no rope scaling, 8K context): the oracle's make_bench_model.sh preset of the same name.
            Name = "llama3-8b", Architecture = "llama", ShapeOf = "meta-llama/Meta-Llama-3-8B-Instruct",
            Hidden = 4096, Layers = 32, Heads = 32, KvHeads = 8, FeedForward = 14336, VocabSize = 128256, VocabFile = Llama3Vocab,
            ContextLength = 8192, RopeTheta = 500000, RmsEpsilon = 1e-5, TiedOutput = false,
        },
        new()
        {
            // Not a released model: a small Qwen3-MoE with the oracle's qwen3-moe-tiny numbers, so both tools agree.
            Name = "qwen3-moe-tiny", Architecture = "qwen3moe", ShapeOf = "(small Qwen3-MoE shape)",
            Hidden = 512, Layers = 4, Heads = 8, KvHeads = 4, ExplicitHeadDim = 64, FeedForward = 1536, VocabSize = 151936,
            VocabFile = QwenVocab, ContextLength = 4096, RopeTheta = 1e6, RmsEpsilon = 1e-6, TiedOutput = false,
            Moe = new MoeShape(ExpertCount: 16, ExpertsUsed: 4, ExpertFeedForward: 256),
        },
        new()
        {
            Name = "qwen3-30b-a3b", Architecture = "qwen3moe", ShapeOf = "Qwen/Qwen3-30B-A3B",
            Hidden = 2048, Layers = 48, Heads = 32, KvHeads = 4, ExplicitHeadDim = 128, FeedForward = 6144, VocabSize = 151936,
            VocabFile = QwenVocab, ContextLength = 40960, RopeTheta = 1e6, RmsEpsilon = 1e-6, TiedOutput = false,
            Moe = new MoeShape(ExpertCount: 128, ExpertsUsed: 8, ExpertFeedForward: 768),
        },

        // Test shapes: seconds to write and to run; the vocabulary is whatever tokenizer they are given.
        new()
        {
            Name = "test-llama", Architecture = "llama", ShapeOf = "(test shape, Llama 3 layout with rope_freqs)",
            Hidden = 256, Layers = 2, Heads = 4, KvHeads = 2, FeedForward = 768, VocabSize = null, VocabFile = Llama2Vocab,
            ContextLength = 16384, RopeTheta = 500000, RmsEpsilon = 1e-5, TiedOutput = false, IsTestShape = true,
            RopeScaling = new Llama3RopeScaling(Factor: 8, LowFrequencyFactor: 1, HighFrequencyFactor: 4, OriginalContextLength: 8192),
        },
        new()
        {
            // Hidden 320 is no multiple of 256, so Q4_K_M takes llama.cpp's fallback types here.
            Name = "test-qwen2", Architecture = "qwen2", ShapeOf = "(test shape, Qwen2 layout, row length 320)",
            Hidden = 320, Layers = 2, Heads = 5, KvHeads = 1, FeedForward = 640, VocabSize = null, VocabFile = QwenVocab,
            ContextLength = 2048, RopeTheta = 1e6, RmsEpsilon = 1e-6, TiedOutput = true, IsTestShape = true,
        },
        new()
        {
            Name = "test-qwen3", Architecture = "qwen3", ShapeOf = "(test shape, Qwen3 layout)",
            Hidden = 256, Layers = 2, Heads = 4, KvHeads = 2, ExplicitHeadDim = 64, FeedForward = 768, VocabSize = null,
            VocabFile = QwenVocab, ContextLength = 2048, RopeTheta = 1e6, RmsEpsilon = 1e-6, TiedOutput = true, IsTestShape = true,
        },
        new()
        {
            // Eight experts: llama.cpp's Q4_K_M treats 8-expert models (Mixtral) specially, which this shape exercises.
            Name = "test-qwen3moe", Architecture = "qwen3moe", ShapeOf = "(test shape, Qwen3-MoE layout, 8 experts)",
            Hidden = 256, Layers = 2, Heads = 4, KvHeads = 2, ExplicitHeadDim = 64, FeedForward = 768, VocabSize = null,
            VocabFile = QwenVocab, ContextLength = 2048, RopeTheta = 1e6, RmsEpsilon = 1e-6, TiedOutput = false, IsTestShape = true,
            Moe = new MoeShape(ExpertCount: 8, ExpertsUsed: 2, ExpertFeedForward: 256),
        },
    ];

    public static ModelPreset? Find(string name) =>
        All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase));
}
