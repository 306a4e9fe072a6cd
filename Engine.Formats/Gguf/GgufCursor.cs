using System.Buffers.Binary;
using System.Text;

namespace Engine.Formats.Gguf;

/// <summary>Reads little-endian fields from a mapped region, checking every read against the bytes that
/// remain before it touches memory or allocates. Lengths are validated against caps and the remaining bytes
/// before any array or string is created (checklist F4, G2, G3).</summary>
internal unsafe struct GgufCursor
{
    readonly MappedRegion _region;
    public long Position;

    /// <summary>The whole file's length: the region's, or more when the region holds only the file's head.</summary>
    public readonly long FileLength;

    public GgufCursor(MappedRegion region, long position, long? fileLength = null)
    {
        _region = region;
        Position = position;
        FileLength = fileLength ?? region.Length;
    }

    public readonly long Remaining => _region.Length - Position;

    /// <summary>The bytes after Position in the whole file: what a declared count may claim (reading past the region
    /// still fails with FileTooShort).</summary>
    public readonly long FileRemaining => FileLength - Position;

    /// <summary>Fails with FileTooShort unless n more bytes are present.</summary>
    public readonly void Require(long n, string what)
    {
        if (n < 0 || n > Remaining)
            throw new ModelFormatException(FormatErrorKind.FileTooShort,
                $"file ends inside {what}: needs {n} bytes, {Math.Max(0, Remaining)} remain", offset: Position,
                expected: $"{n} bytes", actual: $"{Math.Max(0, Remaining)} bytes");
    }

    ReadOnlySpan<byte> Take(int n, string what)
    {
        Require(n, what);
        var span = new ReadOnlySpan<byte>(_region.Pointer + Position, n);
        Position += n;
        return span;
    }

    public byte ReadU8(string what) => Take(1, what)[0];
    public ushort ReadU16(string what) => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, what));
    public uint ReadU32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));
    public ulong ReadU64(string what) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, what));
    public float ReadF32(string what) => BinaryPrimitives.ReadSingleLittleEndian(Take(4, what));
    public double ReadF64(string what) => BinaryPrimitives.ReadDoubleLittleEndian(Take(8, what));

    /// <summary>A length-prefixed UTF-8 string. The length must be at most maxBytes and at most what remains.</summary>
    public string ReadString(long maxBytes, string what) => ReadString(maxBytes, what, -1);

    /// <summary>As <see cref="ReadString(long, string)"/>; with index >= 0 the field is element <paramref name="index"/>
    /// of the array <paramref name="what"/>. The description is only formatted when there is an error to report:
    /// a vocabulary holds hundreds of thousands of strings, and building a label for each doubled the load time.</summary>
    public string ReadString(long maxBytes, string what, int index)
    {
        long start = Position;
        if (Remaining < 8) Require(8, Describe(what, index) + " length");
        ulong length = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(_region.Pointer + Position, 8));
        Position += 8;
        if (length > (ulong)maxBytes)
            throw new ModelFormatException(FormatErrorKind.LengthTooLarge, $"{Describe(what, index)} is {length} bytes long, over the cap of {maxBytes}",
                offset: start, expected: $"<= {maxBytes} bytes", actual: $"{length} bytes");
        if (length > (ulong)FileRemaining)
            throw new ModelFormatException(FormatErrorKind.LengthTooLarge, $"{Describe(what, index)} declares {length} bytes but only {FileRemaining} remain in the file",
                offset: start, expected: $"<= {FileRemaining} bytes", actual: $"{length} bytes");
        Require((long)length, Describe(what, index)); // a head of the file may end inside the string
        var bytes = new ReadOnlySpan<byte>(_region.Pointer + Position, (int)length);
        Position += (int)length;
        try { return StrictUtf8.GetString(bytes); }
        catch (DecoderFallbackException)
        {
            throw new ModelFormatException(FormatErrorKind.InvalidUtf8, $"{Describe(what, index)} is not valid UTF-8", offset: start);
        }
    }

    static string Describe(string what, int index) => index < 0 ? what : $"'{what}'[{index}]";

    static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

}
