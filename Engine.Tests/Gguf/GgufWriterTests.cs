using System.Text;
using Engine.Formats;
using Engine.Formats.Gguf;

namespace Engine.Tests.Gguf;

/// <summary>The writer: round trips through the reader, Add-time validation, streamed data, atomic file writes.</summary>
public class GgufWriterTests
{
    static byte[] Bytes(long n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>Every metadata type: all scalars (with edge values), strings, arrays of each element type, empty arrays.</summary>
    static GgufWriter AllMetadata(GgufWriter w) => w
        .AddMetadata("general.architecture", "llama")
        .AddMetadata("t.u8", (byte)255)
        .AddMetadata("t.i8", (sbyte)-128)
        .AddMetadata("t.u16", (ushort)65535)
        .AddMetadata("t.i16", (short)-32768)
        .AddMetadata("t.u32", uint.MaxValue)
        .AddMetadata("t.i32", int.MinValue)
        .AddMetadata("t.u64", ulong.MaxValue)
        .AddMetadata("t.i64", long.MinValue)
        .AddMetadata("t.f32", 3.14159274f)
        .AddMetadata("t.f32.nan", float.NaN)
        .AddMetadata("t.f32.negzero", -0.0f)
        .AddMetadata("t.f64", double.Epsilon)
        .AddMetadata("t.bool.true", true)
        .AddMetadata("t.bool.false", false)
        .AddMetadata("t.str.empty", "")
        .AddMetadata("t.str.unicode", "Grüße 世界 🦙 \u0000 nul \n newline")
        .AddMetadata("t.ключ.日本", "unicode key")
        .AddMetadata("t.a.u8", new byte[] { 0, 1, 255 })
        .AddMetadata("t.a.i8", new sbyte[] { -1, 0, 127 })
        .AddMetadata("t.a.u16", new ushort[] { 1, 65535 })
        .AddMetadata("t.a.i16", new short[] { -2, 2 })
        .AddMetadata("t.a.u32", new uint[] { 7, uint.MaxValue })
        .AddMetadata("t.a.i32", new[] { -7, int.MaxValue })
        .AddMetadata("t.a.u64", new ulong[] { 1UL << 63 })
        .AddMetadata("t.a.i64", new long[] { long.MinValue, 0, long.MaxValue })
        .AddMetadata("t.a.f32", new[] { 1.5f, -0f, float.PositiveInfinity })
        .AddMetadata("t.a.f64", new[] { Math.PI, -1e300 })
        .AddMetadata("t.a.bool", new[] { true, false, true })
        .AddMetadata("t.a.str", new[] { "", "a", "日本語", "🦙🦙" })
        .AddMetadata("t.a.empty.str", Array.Empty<string>())
        .AddMetadata("t.a.empty.f32", Array.Empty<float>())
        .AddMetadata("t.a.empty.u8", Array.Empty<byte>());

    [Theory]
    [InlineData(null)]
    [InlineData(32u)]
    [InlineData(64u)]
    [InlineData(1u)]
    public void Round_trip_every_metadata_type_and_several_tensor_types(uint? alignment)
    {
        var w = new GgufWriter();
        if (alignment is { } a) w.AddMetadata(GgufKeys.Alignment, a);
        AllMetadata(w);
        var tensors = new (string Name, GgmlType Type, long[] Shape)[]
        {
            ("f32.vec", GgmlType.F32, [7]),
            ("f16.mat", GgmlType.F16, [5, 3]),
            ("q4_0.mat", GgmlType.Q4_0, [64, 3]),
            ("q8_0.3d", GgmlType.Q8_0, [32, 2, 2]),
            ("q4_k.mat", GgmlType.Q4_K, [512, 2]),
            ("f32.4d", GgmlType.F32, [2, 3, 4, 5]),
            ("bf16.one", GgmlType.BF16, [1]),
        };
        var data = new Dictionary<string, byte[]>();
        int seed = 0;
        foreach (var (name, type, shape) in tensors)
        {
            data[name] = Bytes(GgufWriter.TensorByteSize(type, shape), ++seed);
            w.AddTensor(name, type, shape, data[name]);
        }
        var bytes = w.ToArray();
        bytes.LongLength.Should().Be(w.FileSize);

        uint align = alignment ?? 32;
        using var f = GgufFile.Parse(bytes);
        f.Version.Should().Be(3);
        f.Alignment.Should().Be(align);
        (f.DataOffset % align).Should().Be(0);
        f.DataOffset.Should().Be(w.HeaderBytes().Length);

        // Metadata: same keys, same order, same types, same values.
        f.MetadataList.Select(kv => kv.Key).Should().Equal(w.Metadata.Select(kv => kv.Key));
        foreach (var ((key, value), (_, want)) in f.MetadataList.Zip(w.Metadata))
        {
            value.Type.Should().Be(want.Type, key);
            value.ElementType.Should().Be(want.ElementType, key);
            value.Value.Should().BeEquivalentTo(want.Value, o => o.WithStrictOrdering(), key);
        }
        f.Metadata["t.f32.nan"].Value.Should().Be(float.NaN);
        BitConverter.SingleToInt32Bits((float)f.Metadata["t.f32.negzero"].Value).Should().Be(BitConverter.SingleToInt32Bits(-0f));
        f.Metadata["t.str.unicode"].Value.Should().Be("Grüße 世界 🦙 \u0000 nul \n newline");
        f.Metadata["t.ключ.日本"].Value.Should().Be("unicode key");

        // Tensors: same order, type, shape, bytes; each aligned.
        f.Tensors.Select(t => t.Name).Should().Equal(tensors.Select(t => t.Name));
        foreach (var (name, type, shape) in tensors)
        {
            var v = f.GetTensor(name);
            v.Type.Should().Be(type);
            v.Shape.Should().Equal(shape);
            (v.FileOffset % align).Should().Be(0, name);
            v.Bytes.ToArray().Should().Equal(data[name], name);
        }
    }

    [Fact]
    public void Writer_output_equals_the_hand_crafted_bytes()
    {
        // The test-side RawGguf encodes the same file independently; the writer must produce it byte for byte.
        var w = new GgufWriter()
            .AddMetadata("general.architecture", "llama")
            .AddMetadata("llama.block_count", 2u)
            .AddMetadata("tokenizer.ggml.tokens", new[] { "a", "b", "<s>" })
            .AddTensor("token_embd.weight", GgmlType.F32, [4, 3], GgufSpec.Pattern(48, 0))
            .AddTensor("blk.0.attn_q.weight", GgmlType.Q4_0, [32, 2], GgufSpec.Pattern(36, 1))
            .AddTensor("output.weight", GgmlType.Q8_0, [64, 1], GgufSpec.Pattern(68, 2));
        w.ToArray().Should().Equal(GgufSpec.Default().Build());
    }

    [Fact]
    public void Vocab_only_file_has_no_padding_and_reads_back()
    {
        var w = new GgufWriter().AddMetadata("general.architecture", "llama").AddMetadata(GgufKeys.Tokens, new[] { "<unk>", "a" });
        var bytes = w.ToArray();
        bytes.Should().Equal(w.HeaderBytes());
        using var f = GgufFile.Parse(bytes);
        f.Tensors.Should().BeEmpty();
        f.Metadata.GetArrayOrNull<string>(GgufKeys.Tokens).Should().Equal("<unk>", "a");
    }

    [Fact]
    public void Streamed_tensor_equals_in_memory_tensor()
    {
        var data = Bytes(GgufWriter.TensorByteSize(GgmlType.Q8_0, [256, 8]), 7);
        var inMemory = new GgufWriter().AddTensor("w", GgmlType.Q8_0, [256, 8], data).ToArray();
        var streamed = new GgufWriter().AddTensor("w", GgmlType.Q8_0, [256, 8], data.Length, s =>
        {
            for (int i = 0; i < data.Length; i += 100) s.Write(data, i, Math.Min(100, data.Length - i));
        }).ToArray();
        streamed.Should().Equal(inMemory);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(+1)]
    public void Streamed_tensor_of_the_wrong_length_fails_and_leaves_no_file(int delta)
    {
        var dir = Directory.CreateTempSubdirectory("gguf-writer-");
        try
        {
            var path = Path.Combine(dir.FullName, "model.gguf");
            var w = new GgufWriter().AddTensor("w", GgmlType.F32, [16], 64, s => s.Write(new byte[64 + delta]));
            var act = () => w.WriteTo(path);
            act.Should().Throw<InvalidOperationException>().WithMessage("*'w'*");
            dir.GetFiles().Should().BeEmpty("neither the final file nor the temporary one may remain");
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public void WriteTo_path_replaces_atomically_and_keeps_the_old_file_on_failure()
    {
        var dir = Directory.CreateTempSubdirectory("gguf-writer-");
        try
        {
            var path = Path.Combine(dir.FullName, "model.gguf");
            File.WriteAllText(path, "old");
            var good = new GgufWriter().AddMetadata("general.name", "new").AddTensor("t", GgmlType.F16, [4], new byte[8]);
            good.WriteTo(path);
            File.ReadAllBytes(path).Should().Equal(good.ToArray());
            dir.GetFiles().Should().ContainSingle();

            var bad = new GgufWriter().AddTensor("t", GgmlType.F32, [4], 16, _ => throw new IOException("disk on fire"));
            var act = () => bad.WriteTo(path);
            act.Should().Throw<IOException>().WithMessage("disk on fire");
            File.ReadAllBytes(path).Should().Equal(good.ToArray(), "a failed write must not touch the existing file");
            dir.GetFiles().Should().ContainSingle("the temporary file must be deleted");

            using var f = GgufFile.Open(path);
            f.Metadata.GetString("general.name").Should().Be("new");
        }
        finally { dir.Delete(recursive: true); }
    }

    // ------------------------------------------------------------ Add-time validation

    public static TheoryData<string, Action<GgufWriter>> InvalidAdds => new()
    {
        { "empty key", w => w.AddMetadata("", 1u) },
        { "duplicate key", w => w.AddMetadata("k", 1u).AddMetadata("k", 2u) },
        { "key over 64 KiB", w => w.AddMetadata(new string('k', (int)GgufLimits.MaxKeyBytes + 1), 1u) },
        { "key with a lone surrogate", w => w.AddMetadata("k\uD800", 1u) },
        { "string with a lone surrogate", w => w.AddMetadata("k", "\uDC00x") },
        { "string array element with a lone surrogate", w => w.AddMetadata("k", new[] { "ok", "\uD800" }) },
        { "null string array element", w => w.AddMetadata("k", new string[] { null! }) },
        { "scalar of the wrong CLR type", w => w.AddMetadata("k", new GgufValue(GgufValueType.UInt32, 5)) },
        { "string holding an int", w => w.AddMetadata("k", new GgufValue(GgufValueType.String, 5)) },
        { "array of the wrong CLR type", w => w.AddMetadata("k", new GgufValue(GgufValueType.Array, new int[1], GgufValueType.Float32)) },
        { "array of arrays", w => w.AddMetadata("k", new GgufValue(GgufValueType.Array, new object[] { new int[1] }, GgufValueType.Array)) },
        { "unknown value type", w => w.AddMetadata("k", new GgufValue((GgufValueType)13, 1u)) },
        { "unknown element type", w => w.AddMetadata("k", new GgufValue(GgufValueType.Array, new uint[1], (GgufValueType)99)) },
        { "alignment 0", w => w.AddMetadata(GgufKeys.Alignment, 0u) },
        { "alignment 3", w => w.AddMetadata(GgufKeys.Alignment, 3u) },
        { "alignment 2^21", w => w.AddMetadata(GgufKeys.Alignment, 1u << 21) },
        { "alignment as int32", w => w.AddMetadata(GgufKeys.Alignment, 32) },
        { "alignment as uint64", w => w.AddMetadata(GgufKeys.Alignment, 32UL) },
        { "empty tensor name", w => w.AddTensor("", GgmlType.F32, [1], new byte[4]) },
        { "64-byte tensor name", w => w.AddTensor(new string('n', 64), GgmlType.F32, [1], new byte[4]) },
        { "64-byte UTF-8 tensor name of 32 chars", w => w.AddTensor(string.Concat(Enumerable.Repeat("é", 32)), GgmlType.F32, [1], new byte[4]) },
        { "duplicate tensor name", w => w.AddTensor("t", GgmlType.F32, [1], new byte[4]).AddTensor("t", GgmlType.F32, [1], new byte[4]) },
        { "no dimensions", w => w.AddTensor("t", GgmlType.F32, [], new byte[4]) },
        { "five dimensions", w => w.AddTensor("t", GgmlType.F32, [1, 1, 1, 1, 1], new byte[4]) },
        { "negative dimension", w => w.AddTensor("t", GgmlType.F32, [4, -1], new byte[4]) },
        { "element count overflow", w => w.AddTensor("t", GgmlType.F32, [(1L << 42) + 1, (1L << 42) + 1], 0, _ => { }) },
        { "byte size overflow", w => w.AddTensor("t", GgmlType.F32, [1L << 62], 0, _ => { }) },
        { "Q4_0 row of 33", w => w.AddTensor("t", GgmlType.Q4_0, [33, 1], new byte[18]) },
        { "Q4_K row of 128", w => w.AddTensor("t", GgmlType.Q4_K, [128, 1], new byte[72]) },
        { "unknown ggml type", w => w.AddTensor("t", (GgmlType)4, [32], new byte[32]) },
        { "data one byte short", w => w.AddTensor("t", GgmlType.F32, [4], new byte[15]) },
        { "data one byte long", w => w.AddTensor("t", GgmlType.Q8_0, [32], new byte[35]) },
        { "declared byte count wrong", w => w.AddTensor("t", GgmlType.F16, [4], 7, s => s.Write(new byte[7])) },
    };

    [Theory]
    [MemberData(nameof(InvalidAdds))]
    public void Invalid_adds_are_rejected_at_add_time(string what, Action<GgufWriter> add)
    {
        var act = () => add(new GgufWriter());
        act.Should().Throw<ArgumentException>(what);
    }

    [Fact]
    public void Edge_cases_that_are_valid_are_accepted()
    {
        var w = new GgufWriter()
            .AddMetadata(new string('k', (int)GgufLimits.MaxKeyBytes), 1u)
            .AddMetadata(GgufKeys.Alignment, 1u << 20)
            .AddTensor(new string('n', 63), GgmlType.F32, [1], new byte[4])
            .AddTensor("zero", GgmlType.F32, [0, 1L << 62], ReadOnlyMemory<byte>.Empty)
            .AddTensor("last", GgmlType.I8, [3], new byte[] { 1, 2, 3 });
        using var f = GgufFile.Parse(w.ToArray());
        f.Alignment.Should().Be(1u << 20);
        f.GetTensor("zero").ByteSize.Should().Be(0);
        f.GetTensor("last").Bytes.ToArray().Should().Equal(1, 2, 3);
    }
}
