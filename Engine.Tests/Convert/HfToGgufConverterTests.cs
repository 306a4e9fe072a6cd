using System.Text;
using Engine.Conversion;
using Engine.Formats;
using Engine.Formats.Gguf;
using Engine.Tests.Support;
using Engine.Tests.Tokenizers;
using Engine.Tokenizers;

namespace Engine.Tests.Convert;

/// <summary>`engine convert`: the shared Hugging Face fixture folders must come out as the fixture GGUFs llama.cpp's
/// tools wrote (tensor for tensor, byte for byte, and the same vocabulary); a real tokenizer.json must give llama.cpp's
/// own vocab GGUF arrays; bad folders fail with typed errors and leave no file behind.</summary>
public sealed class HfToGgufConverterTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("hfconv-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    static string Fixtures(params string[] parts) => TestPaths.Shared(["fixtures", .. parts])
        ?? throw new InvalidOperationException($"../shared/fixtures/{string.Join('/', parts)} is missing");

    [SharedTheory]
    [InlineData("fx-llama-F32", "F32")]
    [InlineData("fx-qwen2-F32", "F32")]
    [InlineData("fx-qwen3-F32", "F32")]
    [InlineData("fx-qwen3moe-F16", "F16")]
    public void A_fixture_folder_converts_to_the_fixture_gguf_tensor_for_tensor(string name, string type)
    {
        string output = Path.Combine(_dir, name + ".gguf");
        HfToGgufConverter.Convert(Fixtures("hf", name + "-hf"), output, new ConvertOptions(type));

        using var ours = GgufFile.Open(output);
        using var reference = GgufFile.Open(Fixtures(name + ".gguf"));
        ours.Tensors.Select(t => t.Name).Should().BeEquivalentTo(reference.Tensors.Select(t => t.Name));
        foreach (var expected in reference.Tensors)
        {
            var want = reference.GetTensor(expected.Name);
            var got = ours.GetTensor(expected.Name);
            got.Type.Should().Be(want.Type, expected.Name);
            got.Shape.Should().Equal(want.Shape, expected.Name);
            got.Bytes.SequenceEqual(want.Bytes).Should().BeTrue($"{expected.Name} must be byte-identical");
        }

        // The engine runs the converted file to the fixture's llama.cpp golden logits (its metadata is what the
        // converter wrote, not the fixture's).
        using (var loaded = Engine.Models.LoadedModel.Open(output))
            Models.FixtureGoldenTests.CheckAgainstGolden(loaded.Model, GoldenCase.LoadFixture(Path.GetDirectoryName(Fixtures(name + ".gguf"))!, name),
                Models.FixtureGoldenTests.ToleranceFor(name));

        foreach (var key in new[] { GgufKeys.Tokens, GgufKeys.Scores, GgufKeys.TokenTypes })
            ((Array)ours.Metadata[key].Value).Should().BeEquivalentTo((Array)reference.Metadata[key].Value, o => o.WithStrictOrdering(), key);
        foreach (var key in new[] { GgufKeys.TokenizerModel, GgufKeys.BosId, GgufKeys.EosId, GgufKeys.Architecture })
            ours.Metadata[key].Value.Should().Be(reference.Metadata[key].Value, key);
        // The fixture writer also stored the unknown id; llama.cpp's converter leaves it to the UNKNOWN token type.
        Array.IndexOf((int[])ours.Metadata[GgufKeys.TokenTypes].Value, 2).Should().Be((int)(uint)reference.Metadata[GgufKeys.UnkId].Value);
        ours.Metadata[GgufKeys.AddBos].Value.Should().Be(true, "tokenizer_config.json says add_bos_token");
        ours.Metadata[GgufKeys.AddEos].Value.Should().Be(false);
        // Every hyperparameter written equals the fixture's; the fixture writer also stored rope.dimension_count and
        // vocab_size for every architecture, which llama.cpp's converter writes for llama only.
        string prefix = reference.Metadata[GgufKeys.Architecture].Value + ".";
        foreach (var (key, value) in ours.MetadataList.Where(kv => kv.Key.StartsWith(prefix)))
            reference.Metadata.Should().ContainKey(key).WhoseValue.Value.Should().Be(value.Value, key);
        reference.MetadataList.Select(kv => kv.Key).Where(k => k.StartsWith(prefix)).Except(ours.Metadata.Keys)
            .Should().BeSubsetOf([prefix + "rope.dimension_count", prefix + "vocab_size"]);
    }

    [SharedFact]
    public void Moe_experts_are_stacked_in_expert_order()
    {
        string folder = Fixtures("hf", "fx-qwen3moe-F16-hf"), output = Path.Combine(_dir, "moe.gguf");
        HfToGgufConverter.Convert(folder, output, new ConvertOptions("F16"));
        using var gguf = GgufFile.Open(output);
        using var hf = Formats.Safetensors.SafetensorsModel.Open(folder);
        var stacked = gguf.GetTensor("blk.1.ffn_down_exps.weight");
        stacked.Shape.Should().Equal(256, 256, 8);
        long perExpert = stacked.ByteSize / 8;
        for (int e = 0; e < 8; e++)
            stacked.Bytes.Slice((int)(e * perExpert), (int)perExpert)
                .SequenceEqual(hf.GetView($"model.layers.1.mlp.experts.{e}.down_proj.weight").Bytes).Should().BeTrue($"expert {e}");
    }

    [SharedFact]
    public void Bf16_output_rounds_like_gguf_py_and_keeps_norms_in_f32()
    {
        // The fixture BF16 GGUF was written from the same F32 weights by llama.cpp's tools.
        string output = Path.Combine(_dir, "bf16.gguf");
        HfToGgufConverter.Convert(Fixtures("hf", "fx-qwen2-F32-hf"), output, new ConvertOptions("BF16"));
        using var ours = GgufFile.Open(output);
        using var reference = GgufFile.Open(Fixtures("fx-qwen2-BF16.gguf"));
        foreach (var t in reference.Tensors)
        {
            ours.GetTensor(t.Name).Type.Should().Be(t.Type, t.Name);
            ours.GetTensor(t.Name).Bytes.SequenceEqual(reference.GetTensor(t.Name).Bytes).Should().BeTrue(t.Name);
        }
    }

    [SharedFact]
    public void A_sharded_folder_converts_like_the_single_file()
    {
        string folder = Fixtures("hf", "fx-qwen3moe-F16-hf");
        string sharded = Rewrite(folder, keep: _ => true, shards: 3);
        File.Exists(Path.Combine(sharded, "model.safetensors.index.json")).Should().BeTrue();
        string single = Path.Combine(_dir, "single.gguf"), split = Path.Combine(_dir, "split.gguf");
        HfToGgufConverter.Convert(folder, single, new ConvertOptions("F16"));
        HfToGgufConverter.Convert(sharded, split, new ConvertOptions("F16"));
        using var a = GgufFile.Open(single);
        using var b = GgufFile.Open(split);
        b.Tensors.Select(t => t.Name).Should().BeEquivalentTo(a.Tensors.Select(t => t.Name));
        foreach (var t in a.Tensors)
            b.GetTensor(t.Name).Bytes.SequenceEqual(a.GetTensor(t.Name).Bytes).Should().BeTrue(t.Name);
    }

    [SharedFact]
    public void A_missing_expert_is_named()
    {
        string folder = Rewrite(Fixtures("hf", "fx-qwen3moe-F16-hf"), keep: n => n != "model.layers.1.mlp.experts.5.up_proj.weight", shards: 1);
        var e = Refused(folder).Which;
        e.Kind.Should().Be(FormatErrorKind.MissingKey);
        e.Message.Should().Contain("expert 5").And.Contain("blk.1.ffn_up_exps.weight");
    }

    [Fact]
    public void The_cli_converts_and_refuses_an_unknown_type_with_a_usage_error()
    {
        string folder = FakeLlamaFolder(8), output = Path.Combine(_dir, "cli.gguf");
        var ok = CliRunner.Run("convert", folder, output, "--type", "bf16");
        ok.ExitCode.Should().Be(0, ok.Stderr);
        ok.Stderr.Should().Contain("convert: ").And.Contain("tensors");
        using (var gguf = GgufFile.Open(output))
            gguf.GetTensor("blk.0.ffn_up.weight").Type.Should().Be(GgmlType.BF16);

        var quantized = CliRunner.Run("convert", folder, Path.Combine(_dir, "q.gguf"), "--type", "Q7_X");
        quantized.ExitCode.Should().Be(2);
        quantized.Stderr.Should().Contain("Q4_K_M").And.Contain("BF16");
        File.Exists(Path.Combine(_dir, "q.gguf")).Should().BeFalse();

        var unknown = CliRunner.Run("convert", FakeLlamaFolder(8, architecture: "PhiForCausalLM"), Path.Combine(_dir, "p.gguf"));
        unknown.ExitCode.Should().Be(1);
        unknown.Stderr.Should().Contain("PhiForCausalLM").And.Contain("supported");
    }

    // ---------------------------------------------------------------- tokenizer.json

    [SharedTheory]
    [InlineData("qwen3-tokenizer", "qwen2")]
    [InlineData("llama3-tokenizer", "llama-bpe")]
    public void A_real_tokenizer_json_gives_llama_cpp_vocab_arrays_and_its_tokenization(string tokenizer, string vocab)
    {
        using var reference = GgufFile.Open(VocabVectors.Path($"ggml-vocab-{vocab}.gguf"));
        int vocabSize = ((Array)reference.Metadata[GgufKeys.Tokens].Value).Length;
        string folder = FakeLlamaFolder(vocabSize);
        foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(TestPaths.Shared("models", tokenizer, file)!, Path.Combine(folder, file));
        string output = Path.Combine(_dir, vocab + ".gguf");
        HfToGgufConverter.Convert(folder, output, new ConvertOptions("F32"));

        using var ours = GgufFile.Open(output);
        foreach (var key in new[] { GgufKeys.Tokens, GgufKeys.Merges })
            ((Array)ours.Metadata[key].Value).Cast<object>().SequenceEqual(((Array)reference.Metadata[key].Value).Cast<object>())
                .Should().BeTrue($"{key} must equal ggml-vocab-{vocab}.gguf's");
        foreach (var key in new[] { GgufKeys.TokenizerModel, GgufKeys.TokenizerPre, GgufKeys.EosId, GgufKeys.ChatTemplate })
            ours.Metadata[key].Value.Should().Be(reference.Metadata[key].Value, key);

        // The vocab files predate the converter's does_token_look_special rule for "<|...|>": added tokens that are not
        // flagged special but look it (Qwen's <|fim_prefix|> ...) are CONTROL now and were USER_DEFINED then.
        var tokens = (string[])ours.Metadata[GgufKeys.Tokens].Value;
        var ourTypes = (int[])ours.Metadata[GgufKeys.TokenTypes].Value;
        var theirTypes = (int[])reference.Metadata[GgufKeys.TokenTypes].Value;
        var differing = Enumerable.Range(0, ourTypes.Length).Where(i => ourTypes[i] != theirTypes[i]).ToArray();
        differing.Where(i => !(ourTypes[i] == 3 && theirTypes[i] == 4 && tokens[i].StartsWith("<|") && tokens[i].EndsWith("|>"))).Should().BeEmpty();
        differing.Length.Should().Be(vocab == "qwen2" ? 6 : 0);

        var failures = VocabVectors.Check(TokenizerFactory.FromGguf(ours.Metadata), vocab);
        failures.Should().BeEmpty();
    }

    [SharedFact]
    public void The_llama2_tokenizer_model_gives_llama_cpp_spm_vocab_and_its_tokenization()
    {
        using var reference = GgufFile.Open(VocabVectors.Path("ggml-vocab-llama-spm.gguf"));
        int vocabSize = ((Array)reference.Metadata[GgufKeys.Tokens].Value).Length;
        string folder = FakeLlamaFolder(vocabSize);
        File.Copy(TestPaths.Shared("models", "llama2-tokenizer", "tokenizer.model")!, Path.Combine(folder, "tokenizer.model"));
        string output = Path.Combine(_dir, "llama-spm.gguf");
        HfToGgufConverter.Convert(folder, output, new ConvertOptions("F32"));

        using var ours = GgufFile.Open(output);
        foreach (var key in new[] { GgufKeys.Tokens, GgufKeys.Scores, GgufKeys.TokenTypes })
            ((Array)ours.Metadata[key].Value).Cast<object>().SequenceEqual(((Array)reference.Metadata[key].Value).Cast<object>())
                .Should().BeTrue($"{key} must equal ggml-vocab-llama-spm.gguf's");
        foreach (var key in new[] { GgufKeys.TokenizerModel, GgufKeys.BosId, GgufKeys.EosId })
            ours.Metadata[key].Value.Should().Be(reference.Metadata[key].Value, key);
        VocabVectors.Check(TokenizerFactory.FromGguf(ours.Metadata), "llama-spm", dropLeadingBos: 1).Should().BeEmpty();
    }

    [Fact]
    public void An_unknown_pre_tokenizer_is_refused_with_the_known_names()
    {
        string folder = FakeLlamaFolder(4);
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), """
            {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "c": 3}, "merges": ["a b"]},
             "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\w+"}}}
            """);
        var act = () => HfToGgufConverter.Convert(folder, Path.Combine(_dir, "out.gguf"), new ConvertOptions("F32"));
        act.Should().Throw<ModelFormatException>().WithMessage("*qwen2, llama-bpe*");
        Leftovers().Should().BeEmpty();
    }

    // ---------------------------------------------------------------- SentencePiece reader

    [Fact]
    public void A_truncated_tokenizer_model_is_a_typed_error()
    {
        // One piece "ab" (score 0.5, type NORMAL), cut inside its score.
        byte[] whole = [0x0A, 0x0B, 0x0A, 0x02, (byte)'a', (byte)'b', 0x15, 0x00, 0x00, 0x00, 0x3F, 0x18, 0x01];
        var model = SentencePieceModel.Parse(whole);
        model.Pieces.Should().Equal("ab");
        model.Scores.Should().Equal(0.5f);
        var act = () => SentencePieceModel.Parse(whole.AsSpan(0, 8));
        act.Should().Throw<ModelFormatException>().WithMessage("*runs past the end*");
    }

    // ---------------------------------------------------------------- hostile input

    [Fact]
    public void A_folder_without_config_is_refused()
    {
        string folder = FakeLlamaFolder(8);
        File.Delete(Path.Combine(folder, "config.json"));
        Refused(folder).Which.Message.Should().Contain("config.json");
    }

    [Fact]
    public void An_unknown_architecture_lists_the_supported_ones()
    {
        string folder = FakeLlamaFolder(8, architecture: "GPT2LMHeadModel");
        Refused(folder).Which.Message.Should().Contain("GPT2LMHeadModel").And.Contain("Qwen3MoeForCausalLM").And.Contain("LlamaForCausalLM");
    }

    [Fact]
    public void A_missing_tensor_is_named()
    {
        string folder = FakeLlamaFolder(8, skip: "model.layers.0.mlp.up_proj.weight");
        Refused(folder).Which.Field.Should().Be("model.layers.0.mlp.up_proj.weight");
    }

    [Fact]
    public void A_tensor_of_the_wrong_shape_is_named_with_both_shapes()
    {
        string folder = FakeLlamaFolder(8, reshape: ("model.layers.0.self_attn.k_proj.weight", [4, 8]));
        var e = Refused(folder).Which;
        e.Kind.Should().Be(FormatErrorKind.InvalidShape);
        e.Field.Should().Be("model.layers.0.self_attn.k_proj.weight");
        e.Expected.Should().Be("[8, 16]");
        e.Actual.Should().Be("[4, 8]");
    }

    [Fact]
    public void A_truncated_safetensors_file_is_refused()
    {
        string folder = FakeLlamaFolder(8);
        string weights = Path.Combine(folder, "model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        File.WriteAllBytes(weights, bytes[..^100]);
        Refused(folder);
    }

    [SharedTheory]
    [InlineData("qwen2", "Q4_K_M")]
    [InlineData("llama", "IQ4_XS")]
    public void A_quantized_type_gives_the_tensors_llama_quantize_makes_of_the_fixture(string fixture, string type)
    {
        string output = Path.Combine(_dir, $"{fixture}-{type}.gguf");
        HfToGgufConverter.Convert(Fixtures("hf", $"fx-{fixture}-F32-hf"), output, new ConvertOptions(type) { Threads = 2 });
        // The converted F32 file is the fixture's tensors bit for bit, so its quantization is llama-quantize's of the fixture.
        Quantization.ModelQuantizerTests.ShouldMatchReference(output, fixture, type, wholeFile: false);
        Leftovers().Should().Equal(output);
    }

    [Fact]
    public void A_failure_while_writing_leaves_neither_the_output_nor_a_temporary_file()
    {
        string folder = FakeLlamaFolder(8), output = Path.Combine(_dir, "out.gguf");
        using var cancel = new CancellationTokenSource();
        int reports = 0;
        var progress = new Inline(_ => { if (++reports == 3) cancel.Cancel(); });
        var act = () => HfToGgufConverter.Convert(folder, output, new ConvertOptions("F16"), progress, cancel.Token);
        act.Should().Throw<OperationCanceledException>();
        Leftovers().Should().BeEmpty();
    }

    [Fact]
    public void A_small_llama_folder_converts_and_the_engine_loads_it()
    {
        string output = Path.Combine(_dir, "small.gguf");
        var seen = new List<ConvertProgress>();
        HfToGgufConverter.Convert(FakeLlamaFolder(8), output, new ConvertOptions("F16"), new Inline(seen.Add));
        seen.Should().NotBeEmpty();
        seen[^1].BytesDone.Should().Be(seen[^1].BytesTotal);
        using var model = Model.Load(output);
        model.Info.Architecture.Should().Be("llama");
        using var gguf = GgufFile.Open(output);
        gguf.GetTensor("blk.0.attn_q.weight").Type.Should().Be(GgmlType.F16);
        gguf.GetTensor("blk.0.attn_norm.weight").Type.Should().Be(GgmlType.F32);
    }

    [Fact]
    public void Llama3_rope_scaling_becomes_the_rope_freqs_tensor_first()
    {
        string folder = FakeLlamaFolder(8, ropeScaling: """
            {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
            """);
        string output = Path.Combine(_dir, "llama3.gguf");
        HfToGgufConverter.Convert(folder, output, new ConvertOptions("F16"));
        using var gguf = GgufFile.Open(output);
        gguf.Tensors[0].Name.Should().Be("rope_freqs.weight");
        var view = gguf.GetTensor("rope_freqs.weight");
        view.Type.Should().Be(GgmlType.F32);
        var factors = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(view.Bytes).ToArray();
        factors.Should().Equal(Engine.Conversion.Llama3RopeFactors.Compute(8, 10000, 8, 1, 4, 64));
        // The fastest pair (wavelength 2 pi) is left alone; the slowest (wavelength over 64 / low_freq_factor) is scaled.
        factors[0].Should().Be(1f);
        factors[^1].Should().Be(8f);
        gguf.Metadata.Keys.Should().NotContain(k => k.Contains("rope.scaling"));
        using var model = Model.Load(output);
    }

    // ---------------------------------------------------------------- helpers

    sealed class Inline(Action<ConvertProgress> report) : IProgress<ConvertProgress>
    {
        public void Report(ConvertProgress value) => report(value);
    }

    /// <summary>Converting the folder fails with a typed error and leaves nothing where the output would go.</summary>
    FluentAssertions.Specialized.ExceptionAssertions<ModelFormatException> Refused(string folder)
    {
        var act = () => HfToGgufConverter.Convert(folder, Path.Combine(_dir, "out.gguf"), new ConvertOptions("F32"));
        var thrown = act.Should().Throw<ModelFormatException>();
        Leftovers().Should().BeEmpty();
        return thrown;
    }

    string[] Leftovers() => Directory.GetFiles(_dir);

    /// <summary>A one-layer llama folder: config.json, random F32 weights and the shared SentencePiece tokenizer
    /// (or none, when the test brings a tokenizer.json).</summary>
    string FakeLlamaFolder(int vocab, string architecture = "LlamaForCausalLM", string? skip = null, (string Name, long[] Shape)? reshape = null,
        string ropeScaling = "null")
    {
        string folder = Directory.CreateDirectory(Path.Combine(_dir, "hf-" + Guid.NewGuid().ToString("N")[..8])).FullName;
        const int embd = 16, ff = 32, heads = 2, kvHeads = 1, headDim = 8;
        File.WriteAllText(Path.Combine(folder, "config.json"), $$"""
            {"architectures": ["{{architecture}}"], "model_type": "llama", "hidden_size": {{embd}}, "intermediate_size": {{ff}},
             "num_hidden_layers": 1, "num_attention_heads": {{heads}}, "num_key_value_heads": {{kvHeads}}, "vocab_size": {{vocab}},
             "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": {{ropeScaling}}, "tie_word_embeddings": false,
             "bos_token_id": 1, "eos_token_id": 2}
            """);
        var tensors = new List<(string Name, long[] Shape)>
        {
            ("model.embed_tokens.weight", [vocab, embd]), ("lm_head.weight", [vocab, embd]), ("model.norm.weight", [embd]),
            ("model.layers.0.input_layernorm.weight", [embd]), ("model.layers.0.post_attention_layernorm.weight", [embd]),
            ("model.layers.0.self_attn.q_proj.weight", [heads * headDim, embd]), ("model.layers.0.self_attn.k_proj.weight", [kvHeads * headDim, embd]),
            ("model.layers.0.self_attn.v_proj.weight", [kvHeads * headDim, embd]), ("model.layers.0.self_attn.o_proj.weight", [embd, heads * headDim]),
            ("model.layers.0.mlp.gate_proj.weight", [ff, embd]), ("model.layers.0.mlp.up_proj.weight", [ff, embd]),
            ("model.layers.0.mlp.down_proj.weight", [embd, ff]),
        };
        tensors.RemoveAll(t => t.Name == skip);
        if (reshape is { } r) tensors[tensors.FindIndex(t => t.Name == r.Name)] = r;
        File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), Safetensors(tensors));
        if (vocab == 8)
        {
            // A minimal SentencePiece model: <unk>, <s>, </s> and five letters.
            var pieces = new MemoryStream();
            string[] names = ["<unk>", "<s>", "</s>", "a", "b", "c", "d", "e"];
            for (int i = 0; i < names.Length; i++)
            {
                var text = Encoding.UTF8.GetBytes(names[i]);
                byte type = (byte)(i == 0 ? 2 : i < 3 ? 3 : 1);
                byte[] piece = [0x0A, (byte)text.Length, .. text, 0x15, .. BitConverter.GetBytes(-(float)i), 0x18, type];
                pieces.Write([0x0A, (byte)piece.Length, .. piece]);
            }
            File.WriteAllBytes(Path.Combine(folder, "tokenizer.model"), pieces.ToArray());
        }
        return folder;
    }

    /// <summary>A copy of a Hugging Face folder with only the tensors <paramref name="keep"/> accepts, split over
    /// <paramref name="shards"/> files (with model.safetensors.index.json when more than one).</summary>
    string Rewrite(string source, Func<string, bool> keep, int shards)
    {
        string folder = Directory.CreateDirectory(Path.Combine(_dir, "hf-" + Guid.NewGuid().ToString("N")[..8])).FullName;
        foreach (var file in Directory.GetFiles(source).Where(f => !f.EndsWith(".safetensors") && !f.EndsWith(".index.json")))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        using var model = Formats.Safetensors.SafetensorsModel.Open(source);
        var names = model.Tensors.Select(t => t.Name).Where(keep).ToList();
        var weightMap = new Dictionary<string, string>();
        for (int part = 0; part < shards; part++)
        {
            string file = shards == 1 ? "model.safetensors" : $"model-{part + 1:00000}-of-{shards:00000}.safetensors";
            var mine = names.Where((_, i) => i % shards == part).ToList();
            var header = new StringBuilder("{");
            var data = new MemoryStream();
            foreach (var name in mine)
            {
                var info = model.GetInfo(name);
                long begin = data.Length;
                data.Write(model.ShardOf(name).GetBytes(name));
                if (header.Length > 1) header.Append(',');
                header.Append($"\"{name}\":{{\"dtype\":\"{info.DType}\",\"shape\":[{string.Join(',', info.Shape)}],\"data_offsets\":[{begin},{data.Length}]}}");
                weightMap[name] = file;
            }
            header.Append('}');
            var headerBytes = Encoding.UTF8.GetBytes(header.ToString());
            File.WriteAllBytes(Path.Combine(folder, file), [.. BitConverter.GetBytes((long)headerBytes.Length), .. headerBytes, .. data.ToArray()]);
        }
        if (shards > 1)
            File.WriteAllText(Path.Combine(folder, "model.safetensors.index.json"),
                System.Text.Json.JsonSerializer.Serialize(new { metadata = new { }, weight_map = weightMap }));
        return folder;
    }

    static byte[] Safetensors(List<(string Name, long[] Shape)> tensors)
    {
        var random = new Random(7);
        var header = new StringBuilder("{");
        var data = new MemoryStream();
        foreach (var (name, shape) in tensors)
        {
            long count = shape.Aggregate(1L, (a, b) => a * b);
            long begin = data.Length;
            for (long i = 0; i < count; i++) data.Write(BitConverter.GetBytes((float)(random.NextDouble() - 0.5)));
            if (header.Length > 1) header.Append(',');
            header.Append($"\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{string.Join(',', shape)}],\"data_offsets\":[{begin},{data.Length}]}}");
        }
        header.Append('}');
        var headerBytes = Encoding.UTF8.GetBytes(header.ToString());
        return [.. BitConverter.GetBytes((long)headerBytes.Length), .. headerBytes, .. data.ToArray()];
    }
}
