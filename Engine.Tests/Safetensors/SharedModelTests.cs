using System.Runtime.InteropServices;
using Engine.Formats;
using Engine.Formats.HuggingFace;
using Engine.Formats.Safetensors;
using Engine.Tests.Support;

namespace Engine.Tests.Safetensors;

/// <summary>The real checkpoints in ../shared: every one opens, its config validates, and its views read the
/// very bytes the header points at. Skipped, with the reason shown, when ../shared is absent.</summary>
public class SharedModelTests
{
    public static TheoryData<string> Folders => new()
    {
        "models/stories260K-hf-derived",
        "fixtures/hf/fx-llama-F32-hf",
        "fixtures/hf/fx-qwen2-F32-hf",
        "fixtures/hf/fx-qwen3-F32-hf",
        "fixtures/hf/fx-qwen3moe-F16-hf",
    };

    /// <summary>A folder that must be there once ../shared is: a missing one fails rather than passing.</summary>
    static string Folder(string relative) =>
        TestPaths.Shared(relative.Split('/')) ?? throw new Xunit.Sdk.XunitException(
            $"{relative} is missing from the shared folder {TestPaths.SharedDir}");

    [SharedTheory]
    [MemberData(nameof(Folders))]
    public void Every_checkpoint_opens_and_its_views_read_the_declared_bytes(string relative)
    {
        string folder = Folder(relative);
        using var model = SafetensorsModel.Open(folder);
        var config = HfConfig.Load(folder);
        model.Tensors.Should().NotBeEmpty();

        var shard = model.Shards.Should().ContainSingle().Subject;
        long covered = 8 + shard.HeaderLength + model.Tensors.Sum(t => t.ByteSize);
        covered.Should().Be(new FileInfo(shard.FilePath!).Length);

        using var raw = File.OpenRead(shard.FilePath!);
        foreach (var info in model.Tensors)
        {
            var view = model.GetView(info.Name);
            view.Shape.Should().Equal(info.Shape.Reverse());
            view.ElementCount.Should().Be(info.ElementCount);
            var expected = new byte[info.ByteSize];
            raw.Position = info.FileOffset;
            raw.ReadExactly(expected);
            view.Bytes.SequenceEqual(expected).Should().BeTrue($"{info.Name} must read the file's bytes at {info.FileOffset}");
        }

        var embed = model.GetInfo("model.embed_tokens.weight");
        embed.Shape.Should().Equal((long)config.VocabSize, config.HiddenSize);
        model.Tensors.Count(t => t.Name.EndsWith(".input_layernorm.weight", StringComparison.Ordinal))
            .Should().Be(config.NumHiddenLayers);
        model.Contains("lm_head.weight").Should().Be(!config.TieWordEmbeddings);
    }

    [SharedFact]
    public void Stories260K_config_and_tensors()
    {
        string folder = Folder("models/stories260K-hf-derived");
        var c = HfConfig.Load(folder);
        c.ModelType.Should().Be("llama");
        c.HiddenSize.Should().Be(64);
        c.NumHiddenLayers.Should().Be(5);
        c.NumAttentionHeads.Should().Be(8);
        c.NumKeyValueHeads.Should().Be(4);
        c.VocabSize.Should().Be(512);
        c.IntermediateSize.Should().Be(172);
        c.EffectiveHeadDim.Should().Be(8);
        c.TieWordEmbeddings.Should().BeTrue();
        c.EosTokenIds.Should().Equal(2);

        using var model = SafetensorsModel.Open(folder);
        model.Tensors.Should().HaveCount(2 + 9 * 5); // embedding + final norm + 9 per layer
        model.Shards[0].Metadata.Should().Contain("format", "pt");

        var embed = model.GetView("model.embed_tokens.weight");
        embed.Type.Should().Be(GgmlType.F32);
        embed.Shape.Should().Equal(64L, 512L);
        model.GetInfo("model.layers.0.mlp.down_proj.weight").Shape.Should().Equal(64L, 172L);
        model.GetView("model.layers.0.mlp.down_proj.weight").Shape.Should().Equal(172L, 64L);
        model.GetView("model.layers.4.self_attn.k_proj.weight").Shape.Should().Equal(64L, 32L);
        model.GetView("model.norm.weight").Shape.Should().Equal(64L);

        // The norm weights of a trained model are finite and not all zero.
        var norm = MemoryMarshal.Cast<byte, float>(model.GetView("model.norm.weight").Bytes).ToArray();
        norm.Should().OnlyContain(x => float.IsFinite(x));
        norm.Should().Contain(x => x != 0);
    }

    [SharedFact]
    public void Fixture_configs_carry_their_architecture_specifics()
    {
        var qwen2 = HfConfig.Load(Folder("fixtures/hf/fx-qwen2-F32-hf"));
        qwen2.AttentionBias.Should().BeTrue();
        qwen2.RopeTheta.Should().Be(1_000_000);
        qwen2.TieWordEmbeddings.Should().BeTrue();

        var qwen3 = HfConfig.Load(Folder("fixtures/hf/fx-qwen3-F32-hf"));
        qwen3.HeadDim.Should().Be(64);
        qwen3.RmsNormEps.Should().Be(1e-6);

        string moeFolder = Folder("fixtures/hf/fx-qwen3moe-F16-hf");
        var moe = HfConfig.Load(moeFolder);
        moe.IsMoe.Should().BeTrue();
        moe.NumExperts.Should().Be(8);
        moe.NumExpertsPerTok.Should().Be(2);
        moe.MoeIntermediateSize.Should().Be(256);
        moe.NormTopkProb.Should().BeTrue();
        moe.DecoderSparseStep.Should().Be(1);
        moe.MlpOnlyLayers.Should().BeEmpty();
        moe.TorchDtype.Should().Be("float16");

        using var model = SafetensorsModel.Open(moeFolder);
        model.GetView("model.embed_tokens.weight").Type.Should().Be(GgmlType.F16);
        model.Tensors.Count(t => t.Name.StartsWith("model.layers.0.mlp.experts.", StringComparison.Ordinal))
            .Should().Be(3 * moe.NumExperts!.Value);
    }
}
