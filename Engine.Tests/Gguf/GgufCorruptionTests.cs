using System.Diagnostics;
using System.Text;
using Engine.Formats;
using Engine.Formats.Gguf;

namespace Engine.Tests.Gguf;

/// <summary>One hand-crafted defect per rule of the reliability checklist (F1-F11, G1-G9), each asserting the exact
/// <see cref="FormatErrorKind"/>, a message that names the field where there is one, and a fast rejection.</summary>
public class GgufCorruptionTests
{
    const ulong TwoTo63 = 1UL << 63;
    const ulong TwoTo31 = 1UL << 31;

    static ModelFormatException Reject(byte[] bytes, FormatErrorKind kind, string? mentions = null)
    {
        var sw = Stopwatch.StartNew();
        ModelFormatException? error = null;
        try { GgufFile.Parse(bytes).Dispose(); }
        catch (ModelFormatException e) { error = e; }
        sw.Stop();
        error.Should().NotBeNull($"a {kind} defect must be rejected");
        error!.Kind.Should().Be(kind, error.Message);
        if (mentions is not null) error.Message.Should().Contain(mentions);
        sw.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(1), "rejection must not scan or allocate by a declared size");
        return error;
    }

    static GgufFile Accept(byte[] bytes) => GgufFile.Parse(bytes);

    static GgufSpec With(Action<GgufSpec> change)
    {
        var s = GgufSpec.Default();
        change(s);
        return s;
    }

    static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    // ------------------------------------------------------------ baseline

    [Fact]
    public void Default_spec_is_valid()
    {
        var bytes = GgufSpec.Default().Build();
        using var f = Accept(bytes);
        f.Tensors.Should().HaveCount(3);
        f.Metadata.Should().HaveCount(3);
        f.GetTensor("output.weight").Bytes.ToArray().Should().Equal(GgufSpec.Pattern(68, 2));
    }

    // ------------------------------------------------------------ F1: too short

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(4)]   // only the magic (Ollama CVE-2024-39720)
    [InlineData(8)]   // magic + version
    [InlineData(16)]  // + tensor count
    [InlineData(23)]  // one byte short of the fixed header
    public void F1_file_shorter_than_the_fixed_header(int length)
    {
        var bytes = GgufSpec.Default().Build()[..length];
        Reject(bytes, FormatErrorKind.FileTooShort);
    }

    [Fact]
    public void F1_empty_file_on_disk_names_the_file()
    {
        var path = Path.Combine(Path.GetTempPath(), $"gguf-empty-{Guid.NewGuid():N}.gguf");
        File.WriteAllBytes(path, []);
        try
        {
            var act = () => GgufFile.Open(path).Dispose();
            var e = act.Should().Throw<ModelFormatException>().Which;
            e.Kind.Should().Be(FormatErrorKind.FileTooShort);
            e.FilePath.Should().Be(path);
            e.Message.Should().Contain(path);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void F1_truncated_inside_a_fixed_size_field()
    {
        // One key "k" holding a uint64, cut in the middle of the value: a fixed-size read past the end.
        var bytes = new GgufSpec().Kv("k", GgufValueType.UInt64, w => w.U64(42)).Build();
        bytes.Length.Should().Be(24 + 9 + 4 + 8);
        Reject(bytes[..^4], FormatErrorKind.FileTooShort);
    }

    // ------------------------------------------------------------ F2: magic / endianness

    [Fact]
    public void F2_bad_magic() =>
        Reject(With(s => s.Magic = BitConverter.ToUInt32("GGUG"u8)).Build(), FormatErrorKind.BadMagic, "GGUG");

    [Fact]
    public void F2_old_ggml_magic_is_bad_magic() =>
        Reject(With(s => s.Magic = BitConverter.ToUInt32("ggjt"u8)).Build(), FormatErrorKind.BadMagic);

    [Fact]
    public void F2_byte_swapped_magic() =>
        Reject(With(s => s.Magic = BitConverter.ToUInt32("FUGG"u8)).Build(), FormatErrorKind.WrongEndianness);

    [Theory]
    [InlineData(0x03000000u)] // 3 written big-endian
    [InlineData(0x02000000u)]
    [InlineData(0x00010000u)]
    public void F2_byte_swapped_version(uint version) =>
        Reject(With(s => s.Version = version).Build(), FormatErrorKind.WrongEndianness, version.ToString());

    // ------------------------------------------------------------ F3: truncated download

    [Fact]
    public void F3_truncated_inside_tensor_data_names_the_tensor_and_the_file_size()
    {
        var full = GgufSpec.Default().Build();
        var bytes = full[..(full.Length - 40)]; // cuts into output.weight (68 bytes + 28 padding at the end)
        var e = Reject(bytes, FormatErrorKind.TensorOutOfBounds, "output.weight");
        e.Message.Should().Contain(bytes.Length.ToString());
        e.Field.Should().Be("output.weight");
    }

    [Fact]
    public void F3_file_ending_right_after_the_header_with_tensors_declared()
    {
        var full = GgufSpec.Default().Build();
        long dataOffset;
        using (var f = Accept(full)) dataOffset = f.DataOffset;
        Reject(full[..(int)dataOffset], FormatErrorKind.TensorOutOfBounds, "token_embd.weight");
    }

    [Fact]
    public void F3_a_file_without_trailing_padding_is_fine()
    {
        var full = GgufSpec.Default().Build();
        using var f = Accept(full[..(full.Length - 28)]); // the last tensor ends exactly at end of file
        f.GetTensor("output.weight").Bytes.Length.Should().Be(68);
    }

    // ------------------------------------------------------------ F4: counts and lengths far beyond the file

    [Theory]
    [InlineData(TwoTo63)]
    [InlineData(ulong.MaxValue)] // -1
    [InlineData(TwoTo31)]
    [InlineData(1_000_000UL)]
    public void F4_huge_tensor_count(ulong count) =>
        Reject(With(s => s.TensorCount = count).Build(), FormatErrorKind.LengthTooLarge, "tensor count");

    [Theory]
    [InlineData(TwoTo63)]
    [InlineData(ulong.MaxValue)]
    [InlineData(TwoTo31)]
    [InlineData(1_000_000UL)]
    public void F4_huge_metadata_count(ulong count) =>
        Reject(With(s => s.KvCount = count).Build(), FormatErrorKind.LengthTooLarge, "metadata count");

    [Theory]
    [InlineData(TwoTo63)]
    [InlineData(ulong.MaxValue)]
    [InlineData(1000UL)] // under the cap, over what remains
    public void F4_huge_key_length(ulong length)
    {
        var spec = GgufSpec.Default();
        var bytes = spec.Build();
        WriteU64(bytes, 24, length); // the first key's length
        Reject(bytes, FormatErrorKind.LengthTooLarge);
    }

    [Theory]
    [InlineData(TwoTo63)]
    [InlineData(ulong.MaxValue)]
    [InlineData(100_000UL)] // under the cap, over what remains
    public void F4_huge_string_value_length(ulong length) =>
        Reject(With(s => s.Kvs[0] = (Utf8("general.architecture"), w => w.U32((uint)GgufValueType.String).U64(length).Bytes("llama"u8))).Build(),
            FormatErrorKind.LengthTooLarge, "general.architecture");

    [Theory]
    [InlineData(TwoTo63)]
    [InlineData(ulong.MaxValue)]
    [InlineData(1UL << 40)]
    [InlineData(1_000_000UL)] // under the cap, but a million strings need at least 8 MB
    public void F4_huge_array_length(ulong length) =>
        Reject(With(s => s.Kvs[2] = (Utf8("tokenizer.ggml.tokens"), w => w.U32((uint)GgufValueType.Array).U32((uint)GgufValueType.String).U64(length).Str("a"))).Build(),
            FormatErrorKind.LengthTooLarge, "tokenizer.ggml.tokens");

    [Fact]
    public void F4_numeric_array_longer_than_the_remaining_bytes() =>
        Reject(With(s => s.Kv("scores", GgufValueType.Array, w => w.U32((uint)GgufValueType.Float64).U64(10_000).F32(1))).Build(),
            FormatErrorKind.LengthTooLarge, "scores");

    // ------------------------------------------------------------ F5: overflow

    [Fact]
    public void F5_element_count_overflow() =>
        Reject(With(s => s.Tensors[0].Dims = [(1UL << 42) + 1, (1UL << 42) + 1]).Build(), FormatErrorKind.Overflow, "token_embd.weight");

    [Fact]
    public void F5_element_count_overflow_over_four_dimensions() =>
        Reject(With(s => s.Tensors[0].Dims = [1UL << 16, 1UL << 16, 1UL << 16, 1UL << 16]).Build(), FormatErrorKind.Overflow, "token_embd.weight");

    [Fact]
    public void F5_byte_size_overflow() =>
        // 2^62 F32 elements fit in a long; their 2^64 bytes do not.
        Reject(With(s => s.Tensors[0].Dims = [1UL << 62]).Build(), FormatErrorKind.Overflow, "token_embd.weight");

    [Fact]
    public void F5_quantized_byte_size_overflow() =>
        Reject(With(s => s.Tensors[2].Dims = [1UL << 62, 4]).Build(), FormatErrorKind.Overflow, "output.weight");

    [Fact]
    public void F5_padding_overflow()
    {
        // The first tensor takes 2^63 - 20 bytes (fits in a long); padding its end to 32 passes 2^63.
        Reject(With(s => s.Tensors[0].Dims = [(1UL << 61) - 5]).Build(), FormatErrorKind.Overflow, "token_embd.weight");
    }

    [Fact]
    public void F5_offset_plus_size_overflow()
    {
        // The first tensor takes 2^63 - 32 bytes; the second starts there (correctly) and its end passes 2^63.
        Reject(With(s => { s.Tensors[0].Dims = [(1UL << 61) - 8]; s.Tensors[1].Offset = (1UL << 63) - 32; }).Build(),
            FormatErrorKind.Overflow, "blk.0.attn_q.weight");
    }

    [Fact]
    public void F5_a_zero_dimension_after_an_overflowing_product_is_an_empty_tensor()
    {
        // Format-legal: numel is 0 whatever the other dims; the reader must not report a spurious overflow.
        var spec = With(s => { s.Tensors[0].Dims = [1UL << 40, 1UL << 40, 0]; s.Tensors[0].DataBytes = 0; });
        using var f = Accept(spec.Build());
        f.GetTensor("token_embd.weight").ByteSize.Should().Be(0);
    }

    // ------------------------------------------------------------ F6: overlap / holes

    [Fact]
    public void F6_overlapping_tensors() =>
        Reject(With(s => s.Tensors[1].Offset = 0).Build(), FormatErrorKind.BadTensorOffset, "blk.0.attn_q.weight");

    [Fact]
    public void F6_hole_between_tensors() =>
        Reject(With(s => s.Tensors[1].Offset = 96).Build(), FormatErrorKind.BadTensorOffset, "blk.0.attn_q.weight");

    [Fact]
    public void F6_tensors_out_of_order() =>
        Reject(With(s => { s.Tensors[0].Offset = 64; s.Tensors[1].Offset = 0; }).Build(), FormatErrorKind.BadTensorOffset, "token_embd.weight");

    [Fact]
    public void F6_offset_over_long_max() =>
        Reject(With(s => s.Tensors[0].Offset = ulong.MaxValue).Build(), FormatErrorKind.BadTensorOffset, "token_embd.weight");

    // ------------------------------------------------------------ F7: duplicates

    [Fact]
    public void F7_duplicate_metadata_key()
    {
        var e = Reject(With(s => s.Kv("llama.block_count", GgufValueType.UInt32, w => w.U32(3))).Build(), FormatErrorKind.Duplicate, "llama.block_count");
        e.Field.Should().Be("llama.block_count");
    }

    [Fact]
    public void F7_duplicate_tensor_name()
    {
        var e = Reject(With(s => s.Tensors[2].Name = Utf8("token_embd.weight")).Build(), FormatErrorKind.Duplicate, "token_embd.weight");
        e.Field.Should().Be("token_embd.weight");
    }

    // ------------------------------------------------------------ F8: unknown tensor type

    [Theory]
    [InlineData(4u)]   // retired Q4_2
    [InlineData(5u)]   // retired Q4_3
    [InlineData(31u)]  // retired Q4_0_4_4
    [InlineData(36u)]
    [InlineData(40u)]
    [InlineData(99u)]
    [InlineData(0x80000000u)]
    [InlineData(0xFFFFFFFFu)]
    public void F8_unknown_tensor_type(uint type)
    {
        var e = Reject(With(s => s.Tensors[1].Type = type).Build(), FormatErrorKind.UnknownTensorType, "blk.0.attn_q.weight");
        e.Actual.Should().Be(type.ToString());
    }

    // ------------------------------------------------------------ F9: shape

    [Theory]
    [InlineData(0u)]
    [InlineData(5u)]
    [InlineData(0xFFFFFFFFu)]
    public void F9_dimension_count_out_of_range(uint nDims)
    {
        // Write nDims but only as many dims as the count says when it is small; for huge counts the count itself fails.
        var spec = GgufSpec.Default();
        spec.Tensors[0].Dims = nDims is > 0 and <= 8 ? Enumerable.Repeat(1UL, (int)nDims).ToArray() : [];
        var bytes = spec.Build();
        if (nDims > 8) PatchDimCount(bytes, spec, 0, nDims);
        Reject(bytes, FormatErrorKind.InvalidShape, "token_embd.weight");
    }

    [Theory]
    [InlineData(TwoTo63)]
    [InlineData(ulong.MaxValue)]          // -1
    [InlineData(0xFFFFFFFFFFFFFFF0UL)]    // -16
    public void F9_negative_dimension(ulong dim) =>
        Reject(With(s => s.Tensors[0].Dims = [4, dim]).Build(), FormatErrorKind.InvalidShape, "token_embd.weight");

    static void PatchDimCount(byte[] bytes, GgufSpec spec, int tensor, uint value)
    {
        // Find the tensor's name in the bytes and patch the u32 that follows it.
        var name = spec.Tensors[tensor].Name;
        int at = bytes.AsSpan().IndexOf(name) + name.Length;
        BitConverter.TryWriteBytes(bytes.AsSpan(at, 4), value).Should().BeTrue();
    }

    // ------------------------------------------------------------ F10: block alignment

    [Fact]
    public void F10_q4_0_row_of_33() =>
        Reject(With(s => s.Tensors[1].Dims = [33, 2]).Build(), FormatErrorKind.NotBlockAligned, "blk.0.attn_q.weight");

    [Fact]
    public void F10_q4_k_row_of_128() =>
        Reject(With(s => { s.Tensors[1].Dims = [128, 2]; s.Tensors[1].Type = (uint)GgmlType.Q4_K; }).Build(),
            FormatErrorKind.NotBlockAligned, "256");

    // ------------------------------------------------------------ F11: UTF-8

    public static TheoryData<byte[]> BadUtf8 => new()
    {
        new byte[] { (byte)'a', 0xFF, (byte)'b' },   // never valid
        new byte[] { 0xC3, 0x28 },                     // bad continuation
        new byte[] { 0xC0, 0xAF },                     // overlong '/'
        new byte[] { 0xED, 0xA0, 0x80 },               // UTF-16 surrogate
        new byte[] { (byte)'x', 0xE2, 0x82 },          // truncated sequence
    };

    [Theory]
    [MemberData(nameof(BadUtf8))]
    public void F11_invalid_utf8_in_a_key(byte[] key) =>
        Reject(With(s => s.Kv(key, (uint)GgufValueType.UInt8, w => w.U8(1))).Build(), FormatErrorKind.InvalidUtf8, "key");

    [Theory]
    [MemberData(nameof(BadUtf8))]
    public void F11_invalid_utf8_in_a_string_value(byte[] value) =>
        Reject(With(s => s.Kv("general.name", GgufValueType.String, w => w.Str(value))).Build(), FormatErrorKind.InvalidUtf8, "general.name");

    [Theory]
    [MemberData(nameof(BadUtf8))]
    public void F11_invalid_utf8_in_a_string_array_element(byte[] value) =>
        Reject(With(s => s.Kv("tokenizer.ggml.merges", GgufValueType.Array, w => w.U32((uint)GgufValueType.String).U64(2).Str("a b").Str(value))).Build(),
            FormatErrorKind.InvalidUtf8, "tokenizer.ggml.merges");

    [Theory]
    [MemberData(nameof(BadUtf8))]
    public void F11_invalid_utf8_in_a_tensor_name(byte[] name) =>
        Reject(With(s => s.Tensors[1].Name = name).Build(), FormatErrorKind.InvalidUtf8, "tensor #1");

    [Fact]
    public void F11_valid_multibyte_utf8_is_kept()
    {
        using var f = Accept(With(s => s.Kv("general.name", GgufValueType.String, w => w.Str("Grüße, 世界 🦙"))).Build());
        f.Metadata["general.name"].Value.Should().Be("Grüße, 世界 🦙");
    }

    // ------------------------------------------------------------ G1: version

    [Theory]
    [InlineData(0u)] // (v & 0xFFFF) == 0 but v == 0: not byte-swapped, simply unsupported
    [InlineData(1u)]
    [InlineData(4u)]
    [InlineData(0xFFFFu)]
    [InlineData(0xFFFFFFFFu)]
    public void G1_unsupported_version(uint version)
    {
        var e = Reject(With(s => s.Version = version).Build(), FormatErrorKind.UnsupportedVersion, version.ToString());
        e.Actual.Should().Be(version.ToString());
    }

    [Fact]
    public void G1_version_2_is_read()
    {
        using var f = Accept(With(s => s.Version = 2).Build());
        f.Version.Should().Be(2);
    }

    // ------------------------------------------------------------ G2: string caps

    [Fact]
    public void G2_string_value_over_the_cap() =>
        Reject(With(s => s.Kvs[0] = (Utf8("general.architecture"), w => w.U32((uint)GgufValueType.String).U64((ulong)GgufLimits.MaxStringBytes + 1))).Build(),
            FormatErrorKind.LengthTooLarge, "cap");

    [Fact]
    public void G2_key_over_the_cap()
    {
        var bytes = GgufSpec.Default().Build();
        WriteU64(bytes, 24, (ulong)GgufLimits.MaxKeyBytes + 1);
        Reject(bytes, FormatErrorKind.LengthTooLarge, "cap");
    }

    [Fact]
    public void G2_key_at_the_cap_is_read()
    {
        var key = new string('k', (int)GgufLimits.MaxKeyBytes);
        using var f = Accept(With(s => s.Kv(key, GgufValueType.UInt8, w => w.U8(7))).Build());
        f.Metadata[key].Value.Should().Be((byte)7);
    }

    // ------------------------------------------------------------ G3: value types and arrays

    [Theory]
    [InlineData(13u)]
    [InlineData(100u)]
    [InlineData(0xFFFFFFFFu)]
    public void G3_value_type_out_of_range(uint type) =>
        Reject(With(s => s.Kv(Utf8("test.bad"), type, w => w.U32(0))).Build(), FormatErrorKind.InvalidValueType, "test.bad");

    [Fact]
    public void G3_array_of_arrays() =>
        Reject(With(s => s.Kv("test.nested", GgufValueType.Array, w => w.U32((uint)GgufValueType.Array).U64(1).U32((uint)GgufValueType.UInt8).U64(1).U8(1))).Build(),
            FormatErrorKind.InvalidValueType, "array of arrays");

    [Theory]
    [InlineData(13u)]
    [InlineData(0xFFFFFFFFu)]
    public void G3_array_element_type_out_of_range(uint type) =>
        Reject(With(s => s.Kv("test.arr", GgufValueType.Array, w => w.U32(type).U64(1).U8(1))).Build(), FormatErrorKind.InvalidValueType, "test.arr");

    [Fact]
    public void G3_array_count_over_the_cap() =>
        Reject(With(s => s.Kv("test.arr", GgufValueType.Array, w => w.U32((uint)GgufValueType.UInt8).U64((ulong)GgufLimits.MaxArrayElements + 1))).Build(),
            FormatErrorKind.LengthTooLarge, "cap");

    [Fact]
    public void G3_empty_array_is_read()
    {
        using var f = Accept(With(s => s.Kv("test.empty", GgufValueType.Array, w => w.U32((uint)GgufValueType.Int32).U64(0))).Build());
        f.Metadata["test.empty"].Value.Should().BeOfType<int[]>().Which.Should().BeEmpty();
    }

    // ------------------------------------------------------------ G4: empty key

    [Fact]
    public void G4_empty_key() =>
        Reject(With(s => s.Kv("", GgufValueType.UInt32, w => w.U32(1))).Build(), FormatErrorKind.InvalidName, "empty");

    // ------------------------------------------------------------ G5: alignment

    public static TheoryData<string, GgufValueType, Action<RawGguf>> BadAlignments => new()
    {
        { "string", GgufValueType.String, w => w.Str("32") },
        { "uint64", GgufValueType.UInt64, w => w.U64(32) },
        { "int32", GgufValueType.Int32, w => w.U32(32) },
        { "array", GgufValueType.Array, w => w.U32((uint)GgufValueType.UInt32).U64(1).U32(32) },
        { "0", GgufValueType.UInt32, w => w.U32(0) },
        { "3", GgufValueType.UInt32, w => w.U32(3) },
        { "48", GgufValueType.UInt32, w => w.U32(48) },
        { "2^21", GgufValueType.UInt32, w => w.U32(1u << 21) },
        { "2^31", GgufValueType.UInt32, w => w.U32(1u << 31) },
    };

    [Theory]
    [MemberData(nameof(BadAlignments))]
    public void G5_bad_alignment(string what, GgufValueType type, Action<RawGguf> value)
    {
        _ = what;
        Reject(With(s => s.Kv(GgufKeys.Alignment, type, value)).Build(), FormatErrorKind.BadAlignment, GgufKeys.Alignment);
    }

    [Theory]
    [InlineData(1u)]
    [InlineData(8u)]
    [InlineData(64u)]
    [InlineData(1u << 20)] // the cap itself
    public void G5_explicit_alignment_is_used(uint alignment)
    {
        var spec = With(s => { s.Kv(GgufKeys.Alignment, GgufValueType.UInt32, w => w.U32(alignment)); s.Alignment = alignment; });
        using var f = Accept(spec.Build());
        f.Alignment.Should().Be(alignment);
        (f.DataOffset % alignment).Should().Be(0);
        foreach (var t in f.Tensors) (f.GetTensor(t.Name).FileOffset % alignment).Should().Be(0);
        f.GetTensor("output.weight").Bytes.ToArray().Should().Equal(GgufSpec.Pattern(68, 2));
    }

    [Fact]
    public void G5_absent_alignment_defaults_to_32()
    {
        using var f = Accept(GgufSpec.Default().Build());
        f.Alignment.Should().Be(32);
        (f.DataOffset % 32).Should().Be(0);
    }

    // ------------------------------------------------------------ G6: tensor names

    [Fact]
    public void G6_empty_tensor_name() =>
        Reject(With(s => s.Tensors[1].Name = []).Build(), FormatErrorKind.InvalidName, "empty");

    [Fact]
    public void G6_64_byte_tensor_name()
    {
        var name = new string('n', 64);
        Reject(With(s => s.Tensors[1].Name = Utf8(name)).Build(), FormatErrorKind.InvalidName, name);
    }

    [Fact]
    public void G6_64_byte_tensor_name_counted_in_bytes_not_chars()
    {
        var name = string.Concat(Enumerable.Repeat("é", 32)); // 32 chars, 64 bytes
        Reject(With(s => s.Tensors[1].Name = Utf8(name)).Build(), FormatErrorKind.InvalidName);
    }

    [Fact]
    public void G6_63_byte_tensor_name_is_fine()
    {
        var name = new string('n', 63);
        using var f = Accept(With(s => s.Tensors[1].Name = Utf8(name)).Build());
        f.TryGetTensor(name, out _).Should().BeTrue();
    }

    // ------------------------------------------------------------ G7: offsets

    [Theory]
    [InlineData(65UL)]
    [InlineData(48UL)]  // aligned to 16 but not 32
    [InlineData(1UL)]
    public void G7_misaligned_offset(ulong offset)
    {
        var e = Reject(With(s => s.Tensors[1].Offset = offset).Build(), FormatErrorKind.BadTensorOffset, "not a multiple of the alignment");
        e.Expected.Should().Be("64");
        e.Actual.Should().Be(offset.ToString());
    }

    [Fact]
    public void G7_first_tensor_not_at_zero() =>
        Reject(With(s => s.Tensors[0].Offset = 32).Build(), FormatErrorKind.BadTensorOffset, "token_embd.weight");

    [Fact]
    public void G7_offset_aligned_to_32_but_not_to_a_declared_64()
    {
        // With general.alignment = 64, the second tensor (after 48 bytes) must be at 64; 32 is misaligned.
        var spec = With(s => { s.Kv(GgufKeys.Alignment, GgufValueType.UInt32, w => w.U32(64)); s.Alignment = 64; s.Tensors[1].Offset = 32; });
        Reject(spec.Build(), FormatErrorKind.BadTensorOffset, "alignment 64");
    }

    // ------------------------------------------------------------ G8: wrong metadata type for a known key

    [Fact]
    public void G8_block_count_as_string()
    {
        using var f = Accept(With(s => s.Kvs[1] = (Utf8("llama.block_count"), w => w.U32((uint)GgufValueType.String).Str("2"))).Build());
        var act = () => f.Metadata.GetInteger("llama.block_count");
        var e = act.Should().Throw<ModelFormatException>().Which;
        e.Kind.Should().Be(FormatErrorKind.WrongMetadataType);
        e.Field.Should().Be("llama.block_count");
        e.Expected.Should().Be("integer");
        e.Actual.Should().Be("string");
        e.Message.Should().Contain("llama.block_count");
    }

    [Fact]
    public void G8_scores_as_uint8_array()
    {
        using var f = Accept(With(s => s.Kv(GgufKeys.Scores, GgufValueType.Array, w => w.U32((uint)GgufValueType.UInt8).U64(2).U8(1).U8(2))).Build());
        var act = () => f.Metadata.GetArrayOrNull<float>(GgufKeys.Scores);
        var e = act.Should().Throw<ModelFormatException>().Which;
        e.Kind.Should().Be(FormatErrorKind.WrongMetadataType);
        e.Expected.Should().Be("array[float32]");
        e.Actual.Should().Be("array[uint8]");
    }

    [Fact]
    public void G8_typed_access_of_the_right_type_works()
    {
        using var f = Accept(GgufSpec.Default().Build());
        f.Metadata.GetString("general.architecture").Should().Be("llama");
        f.Metadata.GetInteger("llama.block_count").Should().Be(2);
        f.Metadata.GetArrayOrNull<string>("tokenizer.ggml.tokens").Should().Equal("a", "b", "<s>");
        f.Metadata.GetFloatOrNull("llama.block_count.absent").Should().BeNull();
    }

    [Fact]
    public void G8_bool_byte_other_than_0_or_1_is_rejected() =>
        Reject(With(s => s.Kv("test.flag", GgufValueType.Bool, w => w.U8(2))).Build(), FormatErrorKind.WrongMetadataType, "test.flag");

    // ------------------------------------------------------------ G9: missing key

    [Fact]
    public void G9_missing_required_key()
    {
        using var f = Accept(GgufSpec.Default().Build());
        var act = () => f.Metadata.GetString("llama.context_length");
        var e = act.Should().Throw<ModelFormatException>().Which;
        e.Kind.Should().Be(FormatErrorKind.MissingKey);
        e.Message.Should().Contain("llama.context_length");
    }

    [Fact]
    public void G9_missing_tensor()
    {
        using var f = Accept(GgufSpec.Default().Build());
        var act = () => f.GetTensor("blk.9.ffn_up.weight");
        act.Should().Throw<ModelFormatException>().Which.Kind.Should().Be(FormatErrorKind.MissingKey);
        f.TryGetTensor("blk.9.ffn_up.weight", out _).Should().BeFalse();
    }

    // ------------------------------------------------------------ success variants

    [Fact]
    public void SUCCESS_vocab_only_file_ending_right_after_the_header()
    {
        var spec = new GgufSpec()
            .Kv("general.architecture", GgufValueType.String, w => w.Str("llama"))
            .Kv("tokenizer.ggml.tokens", GgufValueType.Array, w => w.U32((uint)GgufValueType.String).U64(2).Str("<unk>").Str("é"));
        var bytes = spec.Build();
        (bytes.Length % 32).Should().NotBe(0, "the test wants a file that ends before the aligned data offset");
        using var f = Accept(bytes);
        f.Tensors.Should().BeEmpty();
        f.DataOffset.Should().BeGreaterThan(f.FileSize);
        f.Metadata.GetArrayOrNull<string>("tokenizer.ggml.tokens").Should().Equal("<unk>", "é");
    }

    [Fact]
    public void SUCCESS_header_only_no_metadata_no_tensors()
    {
        using var f = Accept(new GgufSpec().Build());
        f.Tensors.Should().BeEmpty();
        f.Metadata.Should().BeEmpty();
    }

    [Fact]
    public void SUCCESS_zero_size_tensor()
    {
        var spec = With(s => { s.Tensors.Insert(1, RawTensor.Of("empty", GgmlType.F32, 0, 5)); });
        using var f = Accept(spec.Build());
        f.GetTensor("empty").ByteSize.Should().Be(0);
        f.GetTensor("output.weight").Bytes.ToArray().Should().Equal(GgufSpec.Pattern(68, 3));
    }

    static void WriteU64(byte[] bytes, int at, ulong v) => BitConverter.TryWriteBytes(bytes.AsSpan(at, 8), v).Should().BeTrue();
}
