using System.Buffers.Binary;
using System.Text;
using Engine.Formats;
using static Engine.Tests.Safetensors.SafetensorsBuilder;

namespace Engine.Tests.Safetensors;

/// <summary>The corruption corpus: one hand-made fault per reliability-checklist row, each an edit of the valid
/// sample (see <see cref="SafetensorsBuilder.Sample"/>), asserting the exact kind of rejection.</summary>
public class SafetensorsCorruptionTests
{
    static readonly string ValidHeader = Sample().HeaderJson();
    static readonly byte[] ValidBuffer = Sample().Buffer();

    /// <summary>The sample with one textual edit of its header.</summary>
    static byte[] WithHeader(string from, string to, byte[]? buffer = null)
    {
        ValidHeader.Should().Contain(from, "the edit must apply to the sample");
        return Assemble(ValidHeader.Replace(from, to), buffer ?? ValidBuffer);
    }

    static byte[] WithTensor(string entry, byte[] buffer) =>
        Assemble("{\"t\":" + entry + "}", buffer);

    [Fact]
    public void Sample_is_valid()
    {
        using var file = Parse(Sample().Build());
        file.Tensors.Should().HaveCount(2);
    }

    // ---- F1: too short

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    public void F1_file_shorter_than_the_length_prefix(int length)
    {
        var e = Reject(new byte[length]);
        e.Kind.Should().Be(FormatErrorKind.FileTooShort);
        e.Offset.Should().Be(0);
    }

    [Fact]
    public void F1_only_the_length_prefix()
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 64);
        Reject(bytes).Kind.Should().Be(FormatErrorKind.FileTooShort);
    }

    // ---- F3: truncated download

    [Fact]
    public void F3_truncated_buffer_names_the_tensor_past_the_end()
    {
        var bytes = Sample().Build();
        var e = Reject(bytes[..^4]);
        e.Kind.Should().Be(FormatErrorKind.TensorOutOfBounds);
        e.Field.Should().Be("b");
        e.Message.Should().Contain("corrupted or incomplete");
    }

    [Fact]
    public void F3_buffer_missing_entirely()
    {
        var e = Reject(Assemble(ValidHeader, []));
        e.Kind.Should().Be(FormatErrorKind.TensorOutOfBounds);
        e.Field.Should().Be("a");
    }

    // ---- F4 / S1: header length

    [Theory]
    [InlineData(ulong.MaxValue)]               // -1
    [InlineData(1UL << 63)]
    [InlineData(1UL << 32)]
    [InlineData(100_000_001UL)]
    public void F4_S1_header_length_over_the_cap(ulong declared)
    {
        var e = Reject(Assemble(ValidHeader, ValidBuffer, declaredLength: declared));
        e.Kind.Should().Be(FormatErrorKind.HeaderTooLarge);
        e.Offset.Should().Be(0);
        e.Actual.Should().Be(declared.ToString());
    }

    [Fact]
    public void S1_header_length_past_the_end_of_the_file()
    {
        var bytes = Sample().Build();
        var e = Reject(Assemble(ValidHeader, ValidBuffer, declaredLength: (ulong)bytes.Length));
        e.Kind.Should().Be(FormatErrorKind.FileTooShort);
    }

    // ---- F5: overflow

    [Fact]
    public void F5_element_count_overflow()
    {
        long big = (1L << 42) + 1;
        var e = Reject(WithTensor($"{{\"dtype\":\"F32\",\"shape\":[{big},{big}],\"data_offsets\":[0,4]}}", new byte[4]));
        e.Kind.Should().Be(FormatErrorKind.Overflow);
        e.Field.Should().Be("t");
    }

    [Fact]
    public void F5_byte_size_overflow()
    {
        // numel fits in 63 bits, numel * 64 bits does not.
        var e = Reject(WithTensor($"{{\"dtype\":\"F64\",\"shape\":[{1L << 60}],\"data_offsets\":[0,8]}}", new byte[8]));
        e.Kind.Should().Be(FormatErrorKind.Overflow);
    }

    [Theory]
    [InlineData("[0,99999999999999999999]")]
    [InlineData("[0,9223372036854775808]")]
    public void F5_offset_beyond_63_bits(string offsets)
    {
        var e = Reject(WithTensor($"{{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{offsets}}}", new byte[4]));
        e.Kind.Should().Be(FormatErrorKind.Overflow);
    }

    [Fact]
    public void F5_dimension_beyond_63_bits()
    {
        var e = Reject(WithTensor("{\"dtype\":\"F32\",\"shape\":[18446744073709551616],\"data_offsets\":[0,4]}", new byte[4]));
        e.Kind.Should().Be(FormatErrorKind.Overflow);
    }

    // ---- F6 / S4: offsets

    [Fact]
    public void F6_overlapping_tensors()
    {
        var e = Reject(WithHeader("\"data_offsets\":[24,32]", "\"data_offsets\":[20,28]"));
        e.Kind.Should().Be(FormatErrorKind.InvalidOffsets);
        e.Field.Should().Be("b");
    }

    [Fact]
    public void F6_hole_between_tensors()
    {
        var e = Reject(WithHeader("\"data_offsets\":[24,32]", "\"data_offsets\":[28,36]", new byte[36]));
        e.Kind.Should().Be(FormatErrorKind.InvalidOffsets);
        e.Field.Should().Be("b");
    }

    [Fact]
    public void S4_first_begin_not_zero()
    {
        var e = Reject(WithTensor("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}", new byte[8]));
        e.Kind.Should().Be(FormatErrorKind.InvalidOffsets);
    }

    [Fact]
    public void S4_end_before_begin()
    {
        var e = Reject(WithHeader("\"data_offsets\":[24,32]", "\"data_offsets\":[24,16]"));
        e.Kind.Should().Be(FormatErrorKind.InvalidOffsets);
    }

    [Fact]
    public void S4_negative_offset()
    {
        var e = Reject(WithHeader("\"data_offsets\":[0,24]", "\"data_offsets\":[-8,24]"));
        e.Kind.Should().Be(FormatErrorKind.InvalidOffsets);
        e.Field.Should().Be("a");
    }

    [Fact]
    public void S4_offsets_need_exactly_two_integers()
    {
        Reject(WithHeader("\"data_offsets\":[0,24]", "\"data_offsets\":[0,24,24]")).Kind.Should().Be(FormatErrorKind.InvalidHeader);
        Reject(WithHeader("\"data_offsets\":[0,24]", "\"data_offsets\":[0]")).Kind.Should().Be(FormatErrorKind.InvalidHeader);
        Reject(WithHeader("\"data_offsets\":[0,24]", "\"data_offsets\":{}")).Kind.Should().Be(FormatErrorKind.InvalidHeader);
        Reject(WithHeader("\"data_offsets\":[0,24]", "\"data_offsets\":[0,\"24\"]")).Kind.Should().Be(FormatErrorKind.InvalidHeader);
    }

    // ---- F7: duplicates

    [Fact]
    public void F7_duplicate_tensor_name()
    {
        var header = "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}," +
                     "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
        var e = Reject(Assemble(header, new byte[8]));
        e.Kind.Should().Be(FormatErrorKind.Duplicate);
        e.Field.Should().Be("t");
        e.Message.Should().Contain("first at byte");
    }

    [Fact]
    public void F7_duplicate_metadata_key()
    {
        var e = Reject(WithHeader("{\"format\":\"pt\"}", "{\"format\":\"pt\",\"format\":\"np\"}"));
        e.Kind.Should().Be(FormatErrorKind.Duplicate);
        e.Field.Should().Be("format");
    }

    [Fact]
    public void F7_duplicate_metadata_object()
    {
        var e = Reject(WithHeader("{\"__metadata__\":{\"format\":\"pt\"},", "{\"__metadata__\":{},\"__metadata__\":{},"));
        e.Kind.Should().Be(FormatErrorKind.Duplicate);
    }

    [Theory]
    [InlineData("\"dtype\":\"F16\"", "\"dtype\":\"F16\",\"dtype\":\"F16\"")]
    [InlineData("\"shape\":[4]", "\"shape\":[4],\"shape\":[4]")]
    [InlineData("\"data_offsets\":[24,32]", "\"data_offsets\":[24,32],\"data_offsets\":[24,32]")]
    public void F7_duplicate_property_inside_an_entry(string from, string to)
    {
        var e = Reject(WithHeader(from, to));
        e.Kind.Should().Be(FormatErrorKind.Duplicate);
        e.Field.Should().Be("b");
    }

    // ---- F8: dtype

    [Theory]
    [InlineData("F33")]
    [InlineData("f32")]
    [InlineData("3")]
    [InlineData("F32, F16")]
    [InlineData(" F32")]
    [InlineData("")]
    [InlineData("Q4_0")]
    public void F8_unknown_dtype(string dtype)
    {
        var e = Reject(WithHeader("\"dtype\":\"F32\"", $"\"dtype\":\"{dtype}\""));
        e.Kind.Should().Be(FormatErrorKind.UnknownTensorType);
        e.Field.Should().Be("a");
        e.Actual.Should().Be(dtype);
    }

    [Fact]
    public void F8_dtype_not_a_string()
    {
        Reject(WithHeader("\"dtype\":\"F32\"", "\"dtype\":0")).Kind.Should().Be(FormatErrorKind.InvalidHeader);
    }

    // ---- F9: shape

    [Fact]
    public void F9_negative_dimension()
    {
        var e = Reject(WithHeader("\"shape\":[2,3]", "\"shape\":[-2,-3]"));
        e.Kind.Should().Be(FormatErrorKind.InvalidShape);
        e.Field.Should().Be("a");
        e.Offset.Should().BeGreaterThan(8);
    }

    [Fact]
    public void F9_too_many_dimensions()
    {
        var dims = string.Join(",", Enumerable.Repeat(1, 65));
        var e = Reject(WithTensor($"{{\"dtype\":\"F32\",\"shape\":[{dims}],\"data_offsets\":[0,4]}}", new byte[4]));
        e.Kind.Should().Be(FormatErrorKind.InvalidShape);
    }

    [Theory]
    [InlineData("[2.5,3]")]
    [InlineData("[2e0,3]")]
    [InlineData("[\"2\",3]")]
    [InlineData("[[2],3]")]
    [InlineData("6")]
    [InlineData("null")]
    public void F9_shape_not_an_array_of_integers(string shape)
    {
        Reject(WithHeader("\"shape\":[2,3]", $"\"shape\":{shape}")).Kind.Should().Be(FormatErrorKind.InvalidHeader);
    }

    // ---- F11 / S2: UTF-8

    [Fact]
    public void F11_invalid_utf8_in_a_tensor_name()
    {
        var header = Encoding.UTF8.GetBytes(ValidHeader);
        int at = Array.IndexOf(header, (byte)'a', ValidHeader.IndexOf("\"a\"", StringComparison.Ordinal));
        header[at] = 0xC3; // a lead byte with no continuation
        var e = Reject(Assemble(header, ValidBuffer));
        e.Kind.Should().Be(FormatErrorKind.InvalidUtf8);
        e.Offset.Should().Be(8 + at);
    }

    [Fact]
    public void F11_escaped_lone_surrogate_in_a_tensor_name()
    {
        Reject(WithHeader("\"a\":{", "\"\\ud800\":{")).Kind.Should().Be(FormatErrorKind.InvalidUtf8);
    }

    [Fact]
    public void F11_overlong_encoding()
    {
        var header = Encoding.UTF8.GetBytes(ValidHeader);
        int at = ValidHeader.IndexOf("\"a\"", StringComparison.Ordinal) + 1;
        var edited = header[..at].Concat(new byte[] { 0xC1, 0xA1 }).Concat(header[(at + 1)..]).ToArray(); // overlong 'a'
        Reject(Assemble(edited, ValidBuffer)).Kind.Should().Be(FormatErrorKind.InvalidUtf8);
    }

    // ---- S2: header form

    [Theory]
    [InlineData(" {}")]                 // leading space
    [InlineData("\uFEFF{}")]            // byte-order mark
    [InlineData("[]")]
    [InlineData("")]
    public void S2_header_not_starting_with_a_brace(string header)
    {
        var e = Reject(Assemble(header, [], padTo: 1));
        e.Kind.Should().Be(FormatErrorKind.InvalidHeader);
        e.Offset.Should().Be(8);
    }

    [Theory]
    [InlineData("{")]
    [InlineData("{\"a\"")]
    [InlineData("{x}")]
    [InlineData("{}x")]
    [InlineData("{}{}")]
    [InlineData("{} // comment")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],}}")]
    [InlineData("{'a':1}")]
    [InlineData("{}\0")]
    public void S2_invalid_json(string header)
    {
        Reject(Assemble(header, new byte[4], padTo: 1)).Kind.Should().Be(FormatErrorKind.InvalidHeader);
    }

    [Fact]
    public void S2_excessive_nesting_is_rejected_without_recursion()
    {
        string deep = new string('[', 5000) + new string(']', 5000);
        var e = Reject(WithHeader("\"dtype\":\"F16\"", $"\"dtype\":\"F16\",\"extra\":{deep}"));
        e.Kind.Should().Be(FormatErrorKind.InvalidHeader);
    }

    [Theory]
    [InlineData("\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]}", "\"b\":[]")]
    [InlineData("\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]}", "\"b\":\"F16\"")]
    [InlineData("\"dtype\":\"F16\",", "")]
    [InlineData("\"shape\":[4],", "")]
    [InlineData(",\"data_offsets\":[24,32]", "")]
    public void S2_tensor_entry_of_the_wrong_form(string from, string to)
    {
        var e = Reject(WithHeader(from, to));
        e.Kind.Should().Be(FormatErrorKind.InvalidHeader);
        e.Field.Should().Be("b");
    }

    // ---- S3: metadata

    [Theory]
    [InlineData("{\"format\":1}")]
    [InlineData("{\"format\":null}")]
    [InlineData("{\"format\":{\"x\":\"y\"}}")]
    [InlineData("{\"format\":[\"pt\"]}")]
    [InlineData("\"pt\"")]
    [InlineData("[]")]
    public void S3_metadata_values_not_strings(string metadata)
    {
        var e = Reject(WithHeader("{\"format\":\"pt\"}", metadata));
        e.Kind.Should().Be(FormatErrorKind.InvalidHeader);
    }

    // ---- S5: sizes

    [Fact]
    public void S5_extent_does_not_match_shape()
    {
        var e = Reject(WithHeader("\"shape\":[2,3]", "\"shape\":[2,2]"));
        e.Kind.Should().Be(FormatErrorKind.SizeMismatch);
        e.Field.Should().Be("a");
        e.Expected.Should().StartWith("16 bytes");
        e.Actual.Should().Be("24 bytes");
    }

    [Fact]
    public void S5_extent_does_not_match_dtype()
    {
        Reject(WithHeader("\"dtype\":\"F32\"", "\"dtype\":\"F16\"")).Kind.Should().Be(FormatErrorKind.SizeMismatch);
    }

    [Theory]
    [InlineData("F4", 3)]
    [InlineData("F6_E2M3", 3)]
    [InlineData("F6_E3M2", 1)]
    public void S5_sub_byte_tensor_not_ending_on_a_byte(string dtype, int count)
    {
        var e = Reject(WithTensor($"{{\"dtype\":\"{dtype}\",\"shape\":[{count}],\"data_offsets\":[0,2]}}", new byte[2]));
        e.Kind.Should().Be(FormatErrorKind.SizeMismatch);
    }

    // ---- S6: coverage

    [Fact]
    public void S6_trailing_bytes_after_the_last_tensor()
    {
        var e = Reject(Assemble(ValidHeader, [.. ValidBuffer, 0, 0, 0, 0]));
        e.Kind.Should().Be(FormatErrorKind.IncompleteBuffer);
    }

    [Fact]
    public void S6_data_with_no_tensors()
    {
        Reject(Assemble("{}", new byte[8])).Kind.Should().Be(FormatErrorKind.IncompleteBuffer);
    }

    // ---- where errors point

    [Fact]
    public void Errors_carry_the_file_and_the_header_position()
    {
        var e = Reject(WithHeader("\"dtype\":\"F16\"", "\"dtype\":\"X16\""));
        e.FilePath.Should().Be("<test>");
        e.Offset.Should().Be(8 + ValidHeader.IndexOf("\"F16\"", StringComparison.Ordinal));
        e.Message.Should().Contain("'b'").And.Contain("X16").And.Contain("UnknownTensorType");
    }
}
