using System.Buffers.Binary;
using System.Text;
using Engine.Formats;

namespace Engine.Conversion;

/// <summary>The parts of a SentencePiece <c>tokenizer.model</c> (a serialized ModelProto) that a GGUF vocabulary needs:
/// each piece with its score and type, the trainer's model type and the normalizer's whitespace flags. Read with a
/// minimal protobuf wire-format reader so the engine needs no protobuf dependency; unknown fields are skipped, as
/// protobuf readers do.</summary>
internal sealed class SentencePieceModel
{
    /// <summary>Piece types as sentencepiece_model.proto numbers them; llama.cpp's token types use the same values.</summary>
    public enum PieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 }

    public required string[] Pieces { get; init; }
    public required float[] Scores { get; init; }
    public required PieceType[] Types { get; init; }
    /// <summary>TrainerSpec.model_type: 1 unigram (the proto's default), 2 BPE, 3 word, 4 char.</summary>
    public int ModelType { get; init; } = 1;
    public bool AddDummyPrefix { get; init; } = true;
    public bool RemoveExtraWhitespaces { get; init; } = true;

    // ModelProto field numbers.
    const int PiecesField = 1, TrainerSpecField = 2, NormalizerSpecField = 3;
    // ModelProto.SentencePiece field numbers.
    const int PieceField = 1, ScoreField = 2, TypeField = 3;
    // TrainerSpec.model_type, NormalizerSpec.add_dummy_prefix and remove_extra_whitespaces.
    const int ModelTypeField = 3, AddDummyPrefixField = 3, RemoveExtraWhitespacesField = 4;

    const int WireVarint = 0, WireFixed64 = 1, WireLengthDelimited = 2, WireFixed32 = 5;

    static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    public static SentencePieceModel Load(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(FormatErrorKind.Io, e.Message, filePath: path, inner: e);
        }
        try { return Parse(bytes); }
        catch (ModelFormatException e) { throw e.WithFile(path); }
    }

    public static SentencePieceModel Parse(ReadOnlySpan<byte> data)
    {
        var pieces = new List<string>();
        var scores = new List<float>();
        var types = new List<PieceType>();
        int modelType = 1;
        bool addDummyPrefix = true, removeExtraWhitespaces = true;
        var reader = new WireReader(data, 0);
        while (!reader.AtEnd)
        {
            var (field, wire) = reader.Tag();
            if (field == PiecesField && wire == WireLengthDelimited)
            {
                long at = reader.Position;
                var (piece, score, type) = ReadPiece(reader.Bytes(), at);
                pieces.Add(piece);
                scores.Add(score);
                types.Add(type);
            }
            else if (field == TrainerSpecField && wire == WireLengthDelimited)
            {
                long at = reader.Position;
                var spec = new WireReader(reader.Bytes(), at);
                while (!spec.AtEnd)
                {
                    var (f, w) = spec.Tag();
                    if (f == ModelTypeField && w == WireVarint) modelType = (int)spec.Varint();
                    else spec.Skip(w);
                }
            }
            else if (field == NormalizerSpecField && wire == WireLengthDelimited)
            {
                long at = reader.Position;
                var spec = new WireReader(reader.Bytes(), at);
                while (!spec.AtEnd)
                {
                    var (f, w) = spec.Tag();
                    if (f == AddDummyPrefixField && w == WireVarint) addDummyPrefix = spec.Varint() != 0;
                    else if (f == RemoveExtraWhitespacesField && w == WireVarint) removeExtraWhitespaces = spec.Varint() != 0;
                    else spec.Skip(w);
                }
            }
            else reader.Skip(wire);
        }
        if (pieces.Count == 0)
            throw new ModelFormatException(FormatErrorKind.InvalidHeader, "the SentencePiece model has no pieces (is this a tokenizer.model file?)");
        return new SentencePieceModel
        {
            Pieces = pieces.ToArray(), Scores = scores.ToArray(), Types = types.ToArray(),
            ModelType = modelType, AddDummyPrefix = addDummyPrefix, RemoveExtraWhitespaces = removeExtraWhitespaces,
        };
    }

    static (string Piece, float Score, PieceType Type) ReadPiece(ReadOnlySpan<byte> message, long baseOffset)
    {
        string? piece = null;
        float score = 0;
        var type = PieceType.Normal;
        var reader = new WireReader(message, baseOffset);
        while (!reader.AtEnd)
        {
            var (field, wire) = reader.Tag();
            if (field == PieceField && wire == WireLengthDelimited)
            {
                long at = reader.Position;
                try { piece = StrictUtf8.GetString(reader.Bytes()); }
                catch (DecoderFallbackException)
                {
                    throw new ModelFormatException(FormatErrorKind.InvalidHeader, "a piece is not valid UTF-8", offset: at);
                }
            }
            else if (field == ScoreField && wire == WireFixed32) score = reader.Float();
            else if (field == TypeField && wire == WireVarint)
            {
                long at = reader.Position;
                ulong raw = reader.Varint();
                if (raw is < 1 or > 6)
                    throw new ModelFormatException(FormatErrorKind.InvalidHeader, $"piece type {raw} is not one of 1..6", offset: at);
                type = (PieceType)raw;
            }
            else reader.Skip(wire);
        }
        if (piece is null)
            throw new ModelFormatException(FormatErrorKind.InvalidHeader, "a SentencePiece entry has no piece text", offset: baseOffset);
        return (piece, score, type);
    }

    /// <summary>Reads protobuf's wire format from a span; every length is checked against what is left, so a
    /// truncated or hostile file ends in a typed error naming the offset.</summary>
    ref struct WireReader(ReadOnlySpan<byte> data, long baseOffset)
    {
        readonly ReadOnlySpan<byte> _data = data;
        int _at;

        public readonly bool AtEnd => _at >= _data.Length;
        public readonly long Position => baseOffset + _at;

        public (int Field, int Wire) Tag()
        {
            ulong tag = Varint();
            if (tag >> 3 is 0 or > int.MaxValue) throw Bad("invalid field number");
            return ((int)(tag >> 3), (int)(tag & 7));
        }

        public ulong Varint()
        {
            ulong value = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_at >= _data.Length) throw Bad("the file ends inside a varint");
                byte b = _data[_at++];
                value |= (ulong)(b & 0x7F) << shift;
                if ((b & 0x80) == 0) return value;
            }
            throw Bad("a varint is longer than 10 bytes");
        }

        public float Float()
        {
            if (_data.Length - _at < 4) throw Bad("the file ends inside a float");
            float v = BinaryPrimitives.ReadSingleLittleEndian(_data[_at..]);
            _at += 4;
            return v;
        }

        public ReadOnlySpan<byte> Bytes()
        {
            ulong length = Varint();
            if (length > (ulong)(_data.Length - _at)) throw Bad($"a field of {length} bytes runs past the end of its message");
            var slice = _data.Slice(_at, (int)length);
            _at += (int)length;
            return slice;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case WireVarint: Varint(); break;
                case WireFixed64: Advance(8); break;
                case WireLengthDelimited: Bytes(); break;
                case WireFixed32: Advance(4); break;
                default: throw Bad($"unsupported protobuf wire type {wire}");
            }
        }

        void Advance(int n)
        {
            if (_data.Length - _at < n) throw Bad("the file ends inside a field");
            _at += n;
        }

        readonly ModelFormatException Bad(string message) =>
            new(FormatErrorKind.InvalidHeader, "tokenizer.model: " + message, offset: Position);
    }
}
