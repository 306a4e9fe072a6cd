using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Engine.Formats.Safetensors;

/// <summary>Reads and validates the header of a Safetensors file: an 8-byte little-endian length N, N bytes of
/// UTF-8 JSON, then the data buffer. The checks are those of the reference implementation
/// (huggingface/safetensors <c>Metadata::validate</c>), each answering a row of the reliability checklist
/// (see docs/formats-safetensors.md). Nothing is allocated in proportion to a declared size: the header is
/// read in place from the map, and every list grows only with the JSON tokens actually present.</summary>
internal sealed class SafetensorsHeaderParser
{
    /// <summary>S1: the reference cap on the header length (100 MB).</summary>
    public const long MaxHeaderLength = 100_000_000;
    /// <summary>S2: a valid header nests three levels (object, entry, shape); the slack is for unknown entry
    /// fields, which are skipped. Deeper input is rejected by the JSON reader itself, with no recursion here.</summary>
    const int MaxJsonDepth = 16;
    /// <summary>F9: more dimensions than PyTorch supports is not a tensor.</summary>
    public const int MaxRank = 64;
    /// <summary>The data starts after the 8-byte length prefix and the header.</summary>
    const int PrefixLength = 8;

    public sealed record Result(long HeaderLength, IReadOnlyDictionary<string, string> Metadata,
        IReadOnlyList<SafetensorsTensorInfo> Tensors);

    /// <summary>One header entry before the whole-file checks (offsets relative to the data buffer).</summary>
    sealed record RawEntry(string Name, SafetensorsDType DType, long[] Shape, long Begin, long End, long JsonOffset, int Order);

    readonly MappedRegion _region;
    readonly string? _file;

    SafetensorsHeaderParser(MappedRegion region, string? filePath) { _region = region; _file = filePath; }

    public static Result Parse(MappedRegion region, string? filePath) => new SafetensorsHeaderParser(region, filePath).Run();

    Result Run()
    {
        long fileLength = _region.Length;
        // F1: not even the length prefix.
        if (fileLength < PrefixLength)
            throw Fail(FormatErrorKind.FileTooShort, "file too short for the 8-byte Safetensors header length",
                "header length", 0, $">= {PrefixLength} bytes", $"{fileLength} bytes");

        // S1/F4: read as unsigned so -1 and 2^63 are just "huge" and compared before any use.
        ulong declared = BinaryPrimitives.ReadUInt64LittleEndian(_region.Span(0, PrefixLength));
        if (declared > MaxHeaderLength)
            throw Fail(FormatErrorKind.HeaderTooLarge, "Safetensors header length is over the 100 MB cap",
                "header length", 0, $"<= {MaxHeaderLength}", declared.ToString());
        long n = (long)declared;
        if (n > fileLength - PrefixLength)
            throw Fail(FormatErrorKind.FileTooShort, "Safetensors header length runs past the end of the file",
                "header length", 0, $"<= {fileLength - PrefixLength} (file of {fileLength} bytes)", n.ToString());

        var header = _region.Span(PrefixLength, n);
        CheckUtf8(header);
        // S2: the reference requires '{' as the very first byte (no BOM, no leading space).
        if (n == 0 || header[0] != (byte)'{')
            throw Fail(FormatErrorKind.InvalidHeader, "Safetensors header does not start with '{'", null, PrefixLength,
                "'{'", n == 0 ? "an empty header" : $"byte 0x{header[0]:X2}");

        var (metadata, entries) = ReadJson(header);
        var tensors = Validate(entries, n, fileLength);
        return new Result(n, metadata, tensors);
    }

    // ---------------------------------------------------------------- JSON structure (S2, S3, F7, F8, F9, F11)

    (Dictionary<string, string>, List<RawEntry>) ReadJson(ReadOnlySpan<byte> header)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var entries = new List<RawEntry>();
        var names = new Dictionary<string, long>(StringComparer.Ordinal); // name -> where it was first declared
        var reader = new Utf8JsonReader(header, new JsonReaderOptions
        {
            MaxDepth = MaxJsonDepth,
            CommentHandling = JsonCommentHandling.Disallow,
            AllowTrailingCommas = false,
        });
        try
        {
            Expect(ref reader, JsonTokenType.StartObject, "the header", null);
            while (true)
            {
                Next(ref reader, null);
                if (reader.TokenType == JsonTokenType.EndObject) break;
                long keyOffset = Offset(ref reader);
                string name = reader.GetString()!;
                if (!names.TryAdd(name, keyOffset))
                    throw Fail(FormatErrorKind.Duplicate,
                        $"'{Shorten(name)}' is declared twice in the header (first at byte {names[name]})", name, keyOffset);
                if (name == "__metadata__") ReadMetadata(ref reader, metadata);
                else entries.Add(ReadEntry(ref reader, name, keyOffset, entries.Count));
            }
            // Trailing spaces are allowed (writers pad the header to 8 bytes); the reader throws on anything else.
            if (reader.Read())
                throw Fail(FormatErrorKind.InvalidHeader, "content after the header's JSON object", null, Offset(ref reader));
        }
        catch (JsonException e)
        {
            throw Fail(FormatErrorKind.InvalidHeader, $"Safetensors header is not valid JSON: {e.Message}", null,
                PrefixLength + reader.BytesConsumed, inner: e);
        }
        catch (InvalidOperationException e)
        {
            // GetString on an escape that decodes to a lone surrogate ("\ud800"): not Unicode text.
            throw Fail(FormatErrorKind.InvalidUtf8, $"header string is not valid Unicode: {e.Message}", null,
                PrefixLength + reader.TokenStartIndex, inner: e);
        }
        return (metadata, entries);
    }

    void ReadMetadata(ref Utf8JsonReader reader, Dictionary<string, string> metadata)
    {
        Next(ref reader, "__metadata__");
        if (reader.TokenType == JsonTokenType.Null) return; // the reference reads it as an Option
        if (reader.TokenType != JsonTokenType.StartObject)
            throw Fail(FormatErrorKind.InvalidHeader, "__metadata__ must be an object of strings", "__metadata__",
                Offset(ref reader), "object", reader.TokenType.ToString());
        while (true)
        {
            Next(ref reader, "__metadata__");
            if (reader.TokenType == JsonTokenType.EndObject) return;
            long keyOffset = Offset(ref reader);
            string key = reader.GetString()!;
            Next(ref reader, key);
            // S3: string -> string only, as the reference's HashMap<String, String>.
            if (reader.TokenType != JsonTokenType.String)
                throw Fail(FormatErrorKind.InvalidHeader, "__metadata__ values must be strings", key,
                    Offset(ref reader), "string", reader.TokenType.ToString());
            if (!metadata.TryAdd(key, reader.GetString()!))
                throw Fail(FormatErrorKind.Duplicate, $"__metadata__ key '{key}' appears twice", key, keyOffset);
        }
    }

    RawEntry ReadEntry(ref Utf8JsonReader reader, string name, long keyOffset, int order)
    {
        Next(ref reader, name);
        if (reader.TokenType != JsonTokenType.StartObject)
            throw Fail(FormatErrorKind.InvalidHeader, "a tensor entry must be an object {dtype, shape, data_offsets}",
                name, Offset(ref reader), "object", reader.TokenType.ToString());
        SafetensorsDType? dtype = null;
        long[]? shape = null;
        (long Begin, long End)? offsets = null;
        while (true)
        {
            Next(ref reader, name);
            if (reader.TokenType == JsonTokenType.EndObject) break;
            long fieldOffset = Offset(ref reader);
            string field = reader.GetString()!;
            bool duplicate = field switch
            {
                "dtype" => dtype is not null,
                "shape" => shape is not null,
                "data_offsets" => offsets is not null,
                _ => false,
            };
            if (duplicate)
                throw Fail(FormatErrorKind.Duplicate, $"tensor entry has two '{field}' properties", name, fieldOffset);
            switch (field)
            {
                case "dtype": dtype = ReadDType(ref reader, name); break;
                case "shape": shape = ReadShape(ref reader, name); break;
                case "data_offsets": offsets = ReadOffsets(ref reader, name); break;
                // Unknown fields are ignored, as the reference (serde without deny_unknown_fields) does.
                default: reader.Skip(); break;
            }
        }
        if (dtype is null || shape is null || offsets is null)
        {
            string missing = dtype is null ? "dtype" : shape is null ? "shape" : "data_offsets";
            throw Fail(FormatErrorKind.InvalidHeader, $"tensor entry lacks '{missing}'", name, keyOffset,
                "dtype, shape and data_offsets", $"no {missing}");
        }
        return new RawEntry(name, dtype.Value, shape, offsets.Value.Begin, offsets.Value.End, keyOffset, order);
    }

    SafetensorsDType ReadDType(ref Utf8JsonReader reader, string name)
    {
        Next(ref reader, name);
        if (reader.TokenType != JsonTokenType.String)
            throw Fail(FormatErrorKind.InvalidHeader, "dtype must be a string", name, Offset(ref reader),
                "string", reader.TokenType.ToString());
        string text = reader.GetString()!;
        // F8: an unknown dtype is rejected by name; nothing is ever indexed by it.
        if (!SafetensorsDTypes.TryParse(text, out var dtype))
            throw Fail(FormatErrorKind.UnknownTensorType, $"unknown dtype '{Shorten(text)}'", name, Offset(ref reader),
                SafetensorsDTypes.AllNames, Shorten(text));
        return dtype;
    }

    long[] ReadShape(ref Utf8JsonReader reader, string name)
    {
        Next(ref reader, name);
        if (reader.TokenType != JsonTokenType.StartArray)
            throw Fail(FormatErrorKind.InvalidHeader, "shape must be an array of integers", name, Offset(ref reader),
                "array", reader.TokenType.ToString());
        var dims = new List<long>(4);
        while (true)
        {
            Next(ref reader, name);
            if (reader.TokenType == JsonTokenType.EndArray) return dims.ToArray();
            if (dims.Count == MaxRank)
                throw Fail(FormatErrorKind.InvalidShape, "too many dimensions", name, Offset(ref reader),
                    $"<= {MaxRank}", "more");
            dims.Add(ReadInteger(ref reader, name, "shape", FormatErrorKind.InvalidShape));
        }
    }

    (long, long) ReadOffsets(ref Utf8JsonReader reader, string name)
    {
        Next(ref reader, name);
        long arrayOffset = Offset(ref reader);
        if (reader.TokenType != JsonTokenType.StartArray)
            throw Fail(FormatErrorKind.InvalidHeader, "data_offsets must be [BEGIN, END]", name, arrayOffset,
                "array of 2 integers", reader.TokenType.ToString());
        Span<long> values = stackalloc long[2];
        int count = 0;
        while (true)
        {
            Next(ref reader, name);
            if (reader.TokenType == JsonTokenType.EndArray) break;
            if (count == 2)
                throw Fail(FormatErrorKind.InvalidHeader, "data_offsets must be [BEGIN, END]", name, arrayOffset,
                    "2 integers", "more");
            values[count++] = ReadInteger(ref reader, name, "data_offsets", FormatErrorKind.InvalidOffsets);
        }
        if (count != 2)
            throw Fail(FormatErrorKind.InvalidHeader, "data_offsets must be [BEGIN, END]", name, arrayOffset,
                "2 integers", count.ToString());
        return (values[0], values[1]);
    }

    /// <summary>A non-negative JSON integer. Fractions and exponents are not integers (InvalidHeader);
    /// a minus sign gives <paramref name="negativeKind"/>; more than 2^63-1 is an Overflow (F5).</summary>
    long ReadInteger(ref Utf8JsonReader reader, string name, string what, FormatErrorKind negativeKind)
    {
        long offset = Offset(ref reader);
        if (reader.TokenType != JsonTokenType.Number)
            throw Fail(FormatErrorKind.InvalidHeader, $"{what} must hold integers", name, offset,
                "integer", reader.TokenType.ToString());
        // Numbers never contain escapes, so ValueSpan is the literal text.
        var raw = reader.ValueSpan;
        string literal = Encoding.UTF8.GetString(raw.Length > 40 ? raw[..40] : raw);
        if (raw.IndexOfAny("."u8) >= 0 || raw.IndexOfAny("eE"u8) >= 0)
            throw Fail(FormatErrorKind.InvalidHeader, $"{what} must hold integers", name, offset, "integer", literal);
        if (raw[0] == (byte)'-' && !(raw.Length == 2 && raw[1] == (byte)'0'))
            throw Fail(negativeKind, $"negative value in {what}", name, offset, ">= 0", literal);
        if (!reader.TryGetInt64(out long value))
            throw Fail(FormatErrorKind.Overflow, $"{what} value does not fit in 63 bits", name, offset,
                $"<= {long.MaxValue}", literal);
        return value;
    }

    // ---------------------------------------------------------------- whole-file checks (F3, F5, F6, S4, S5, S6)

    IReadOnlyList<SafetensorsTensorInfo> Validate(List<RawEntry> entries, long headerLength, long fileLength)
    {
        // The reference sorts by data offsets, then requires the entries to tile the buffer exactly.
        // Ties (zero-size tensors) keep the header's order, so the result does not depend on a sort's stability.
        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin)
            : a.End != b.End ? a.End.CompareTo(b.End) : a.Order.CompareTo(b.Order));
        long dataStart = PrefixLength + headerLength;
        long available = fileLength - dataStart;
        var tensors = new SafetensorsTensorInfo[entries.Count];
        long expectedBegin = 0;
        for (int i = 0; i < entries.Count; i++)
        {
            var e = entries[i];
            // S4/F6: first BEGIN is 0, each BEGIN is the previous END (no hole, no overlap), END >= BEGIN.
            if (e.Begin != expectedBegin || e.End < e.Begin)
                throw Fail(FormatErrorKind.InvalidOffsets,
                    e.End < e.Begin ? "data_offsets END is before BEGIN"
                    : e.Begin > expectedBegin ? "hole in the data buffer before this tensor"
                    : "tensor overlaps the one before it",
                    e.Name, e.JsonOffset, $"[{expectedBegin}, >= {expectedBegin}]", $"[{e.Begin}, {e.End}]");
            expectedBegin = e.End;

            // F5: checked products; an overflow is a lie about the shape, never a wrapped size.
            long numel, bits;
            try
            {
                numel = 1;
                foreach (long d in e.Shape) numel = checked(numel * d);
                bits = checked(numel * e.DType.BitSize());
            }
            catch (OverflowException)
            {
                throw Fail(FormatErrorKind.Overflow, "element count or byte size overflows", e.Name, e.JsonOffset,
                    "< 2^63 bits", $"shape [{string.Join(", ", e.Shape)}] of {e.DType}");
            }
            // S5: sub-byte dtypes must end on a byte boundary; the extent must be exactly numel * bits / 8.
            if (bits % 8 != 0)
                throw Fail(FormatErrorKind.SizeMismatch, "tensor does not end on a byte boundary", e.Name, e.JsonOffset,
                    "element count * bits multiple of 8", $"{numel} x {e.DType.BitSize()} bits");
            long size = bits / 8;
            if (e.End - e.Begin != size)
                throw Fail(FormatErrorKind.SizeMismatch, "data_offsets extent does not match shape and dtype", e.Name,
                    e.JsonOffset, $"{size} bytes ({e.DType} [{string.Join(", ", e.Shape)}])", $"{e.End - e.Begin} bytes");

            // F3: a truncated download. Named per tensor, before the whole-buffer check, for a clearer message.
            if (e.End > available)
                throw Fail(FormatErrorKind.TensorOutOfBounds,
                    $"tensor [{dataStart + e.Begin}, {dataStart + e.Begin}+{size}) is outside the file of size " +
                    $"{fileLength}: corrupted or incomplete", e.Name, e.JsonOffset,
                    $"file of >= {dataStart + e.End} bytes", $"{fileLength} bytes");
            tensors[i] = new SafetensorsTensorInfo(e.Name, e.DType, e.Shape, numel, dataStart + e.Begin, size);
        }
        // S6: every byte of the buffer belongs to a tensor (no trailing data).
        if (expectedBegin != available)
            throw Fail(FormatErrorKind.IncompleteBuffer, "data buffer has bytes no tensor covers", null,
                dataStart + expectedBegin, $"file of {dataStart + expectedBegin} bytes", $"{fileLength} bytes");
        return tensors;
    }

    // ---------------------------------------------------------------- helpers

    /// <summary>F11: the whole header must be UTF-8; names are identifiers, never decoded with replacement.</summary>
    void CheckUtf8(ReadOnlySpan<byte> header)
    {
        if (System.Text.Unicode.Utf8.IsValid(header)) return;
        int at = 0;
        while (at < header.Length)
        {
            if (System.Text.Rune.DecodeFromUtf8(header[at..], out _, out int used) != System.Buffers.OperationStatus.Done) break;
            at += used;
        }
        throw Fail(FormatErrorKind.InvalidUtf8, "Safetensors header is not valid UTF-8", null, PrefixLength + at);
    }

    /// <summary>Reads the next token; the end of the header inside a structure is malformed JSON.</summary>
    void Next(ref Utf8JsonReader reader, string? field)
    {
        if (!reader.Read())
            throw Fail(FormatErrorKind.InvalidHeader, "Safetensors header JSON ends early", field,
                PrefixLength + reader.BytesConsumed);
    }

    void Expect(ref Utf8JsonReader reader, JsonTokenType type, string what, string? field)
    {
        Next(ref reader, field);
        if (reader.TokenType != type)
            throw Fail(FormatErrorKind.InvalidHeader, $"{what} must be a JSON {type}", field, Offset(ref reader),
                type.ToString(), reader.TokenType.ToString());
    }

    static long Offset(ref Utf8JsonReader reader) => PrefixLength + reader.TokenStartIndex;

    /// <summary>Keeps messages bounded when a hostile header holds megabyte-long names.</summary>
    static string Shorten(string text) => text.Length <= 200 ? text : text[..200] + "...";

    ModelFormatException Fail(FormatErrorKind kind, string message, string? field, long? offset,
        string? expected = null, string? actual = null, Exception? inner = null) =>
        new(kind, message, field is null ? null : Shorten(field), offset, expected, actual, _file, inner);
}
