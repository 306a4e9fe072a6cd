using System.Buffers.Binary;
using System.Text;

namespace Engine.Formats.Gguf;

/// <summary>Builds a GGUF v3 file: metadata in insertion order, then tensor infos, then the aligned data section.
/// Everything the reader would reject is rejected here, at Add time, with an <see cref="ArgumentException"/>:
/// a writer that can produce a file its own reader refuses is a bug waiting for a user.
/// Tensor data is either held (<see cref="ReadOnlyMemory{T}"/>) or produced on demand by a delegate, so a
/// converter can stream many GiB without holding them. <see cref="WriteTo(string)"/> writes a temporary file
/// beside the target and renames it into place, so no half-written file ever carries the final name (checklist O1).
/// Every Add method returns the writer, for chaining. Values, arrays and tensor bytes are held by reference until the
/// file is written: do not change them meanwhile. A writer is not thread-safe.</summary>
public sealed class GgufWriter
{
    /// <summary>The GGUF version written.</summary>
    public const uint Version = 3;

    readonly List<KeyValuePair<string, GgufValue>> _metadata = [];
    readonly HashSet<string> _keys = new(StringComparer.Ordinal);
    readonly List<PendingTensor> _tensors = [];
    readonly HashSet<string> _tensorNames = new(StringComparer.Ordinal);

    sealed record PendingTensor(string Name, GgmlType Type, long[] Shape, long ByteSize, ReadOnlyMemory<byte>? Data, Action<Stream>? Writer);

    static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Alignment of the tensor data in bytes: general.alignment when set, else 32.</summary>
    public uint Alignment => _keys.Contains(GgufKeys.Alignment)
        ? (uint)_metadata.First(kv => kv.Key == GgufKeys.Alignment).Value.Value
        : GgufLimits.DefaultAlignment;

    /// <summary>The metadata added so far, in file order.</summary>
    public IReadOnlyList<KeyValuePair<string, GgufValue>> Metadata => _metadata;
    /// <summary>The number of tensors added so far.</summary>
    public int TensorCount => _tensors.Count;

    // ---------------------------------------------------------------- metadata

    /// <summary>Adds one metadata entry. Rejects an empty, over-long or duplicate key, a value whose .NET type does
    /// not match its GGUF type, arrays of arrays, strings over the reader's caps or not encodable as UTF-8, and a
    /// general.alignment that is not a uint32 power of two no larger than 1 MiB.</summary>
    /// <param name="key">The key: 1 byte to 64 KiB of UTF-8, not yet added.</param>
    /// <param name="value">The value; strings at most 16 MiB of UTF-8, arrays at most 64 Mi elements.</param>
    /// <returns>This writer.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="key"/> or <paramref name="value"/> is null.</exception>
    /// <exception cref="ArgumentException">The key or the value breaks one of the rules above.</exception>
    public GgufWriter AddMetadata(string key, GgufValue value)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        if (key.Length == 0) throw new ArgumentException("metadata key is empty", nameof(key));
        long keyBytes = Utf8Length(key, $"metadata key '{key}'", nameof(key));
        if (keyBytes > GgufLimits.MaxKeyBytes)
            throw new ArgumentException($"metadata key is {keyBytes} bytes, over the cap of {GgufLimits.MaxKeyBytes}", nameof(key));
        if (_keys.Contains(key)) throw new ArgumentException($"duplicate metadata key '{key}'", nameof(key));
        ValidateValue(key, value);
        if (key == GgufKeys.Alignment)
        {
            if (value.Type != GgufValueType.UInt32)
                throw new ArgumentException($"{GgufKeys.Alignment} must be a uint32, not {value.TypeName}", nameof(value));
            uint a = (uint)value.Value;
            if (a == 0 || (a & (a - 1)) != 0 || a > GgufLimits.MaxAlignment)
                throw new ArgumentException($"{GgufKeys.Alignment} {a} is not a power of two in [1, {GgufLimits.MaxAlignment}]", nameof(value));
        }
        _keys.Add(key);
        _metadata.Add(new(key, value));
        return this;
    }

    /// <summary>Adds a string value; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it.</summary>
    public GgufWriter AddMetadata(string key, string value) => AddMetadata(key, new GgufValue(GgufValueType.String, value));
    /// <summary>Adds a uint8 value; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it.</summary>
    public GgufWriter AddMetadata(string key, byte value) => AddMetadata(key, new GgufValue(GgufValueType.UInt8, value));
    /// <summary>Adds a int8 value; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it.</summary>
    public GgufWriter AddMetadata(string key, sbyte value) => AddMetadata(key, new GgufValue(GgufValueType.Int8, value));
    /// <summary>Adds a uint16 value; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it.</summary>
    public GgufWriter AddMetadata(string key, ushort value) => AddMetadata(key, new GgufValue(GgufValueType.UInt16, value));
    /// <summary>Adds a int16 value; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it.</summary>
    public GgufWriter AddMetadata(string key, short value) => AddMetadata(key, new GgufValue(GgufValueType.Int16, value));
    /// <summary>Adds a uint32 value; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it.</summary>
    public GgufWriter AddMetadata(string key, uint value) => AddMetadata(key, new GgufValue(GgufValueType.UInt32, value));
    /// <summary>Adds a int32 value; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it.</summary>
    public GgufWriter AddMetadata(string key, int value) => AddMetadata(key, new GgufValue(GgufValueType.Int32, value));
    /// <summary>Adds a uint64 value; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it.</summary>
    public GgufWriter AddMetadata(string key, ulong value) => AddMetadata(key, new GgufValue(GgufValueType.UInt64, value));
    /// <summary>Adds a int64 value; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it.</summary>
    public GgufWriter AddMetadata(string key, long value) => AddMetadata(key, new GgufValue(GgufValueType.Int64, value));
    /// <summary>Adds a float32 value; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it.</summary>
    public GgufWriter AddMetadata(string key, float value) => AddMetadata(key, new GgufValue(GgufValueType.Float32, value));
    /// <summary>Adds a float64 value; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it.</summary>
    public GgufWriter AddMetadata(string key, double value) => AddMetadata(key, new GgufValue(GgufValueType.Float64, value));
    /// <summary>Adds a bool value; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it.</summary>
    public GgufWriter AddMetadata(string key, bool value) => AddMetadata(key, new GgufValue(GgufValueType.Bool, value));
    /// <summary>Adds an array of string; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it. The array
    /// is held, not copied, until the file is written: do not change it meanwhile.</summary>
    public GgufWriter AddMetadata(string key, string[] value) => AddArray(key, GgufValueType.String, value);
    /// <summary>Adds an array of uint8; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it. The array
    /// is held, not copied, until the file is written: do not change it meanwhile.</summary>
    public GgufWriter AddMetadata(string key, byte[] value) => AddArray(key, GgufValueType.UInt8, value);
    /// <summary>Adds an array of int8; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it. The array
    /// is held, not copied, until the file is written: do not change it meanwhile.</summary>
    public GgufWriter AddMetadata(string key, sbyte[] value) => AddArray(key, GgufValueType.Int8, value);
    /// <summary>Adds an array of uint16; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it. The array
    /// is held, not copied, until the file is written: do not change it meanwhile.</summary>
    public GgufWriter AddMetadata(string key, ushort[] value) => AddArray(key, GgufValueType.UInt16, value);
    /// <summary>Adds an array of int16; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it. The array
    /// is held, not copied, until the file is written: do not change it meanwhile.</summary>
    public GgufWriter AddMetadata(string key, short[] value) => AddArray(key, GgufValueType.Int16, value);
    /// <summary>Adds an array of uint32; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it. The array
    /// is held, not copied, until the file is written: do not change it meanwhile.</summary>
    public GgufWriter AddMetadata(string key, uint[] value) => AddArray(key, GgufValueType.UInt32, value);
    /// <summary>Adds an array of int32; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it. The array
    /// is held, not copied, until the file is written: do not change it meanwhile.</summary>
    public GgufWriter AddMetadata(string key, int[] value) => AddArray(key, GgufValueType.Int32, value);
    /// <summary>Adds an array of uint64; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it. The array
    /// is held, not copied, until the file is written: do not change it meanwhile.</summary>
    public GgufWriter AddMetadata(string key, ulong[] value) => AddArray(key, GgufValueType.UInt64, value);
    /// <summary>Adds an array of int64; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it. The array
    /// is held, not copied, until the file is written: do not change it meanwhile.</summary>
    public GgufWriter AddMetadata(string key, long[] value) => AddArray(key, GgufValueType.Int64, value);
    /// <summary>Adds an array of float32; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it. The array
    /// is held, not copied, until the file is written: do not change it meanwhile.</summary>
    public GgufWriter AddMetadata(string key, float[] value) => AddArray(key, GgufValueType.Float32, value);
    /// <summary>Adds an array of float64; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it. The array
    /// is held, not copied, until the file is written: do not change it meanwhile.</summary>
    public GgufWriter AddMetadata(string key, double[] value) => AddArray(key, GgufValueType.Float64, value);
    /// <summary>Adds an array of bool; checked as <see cref="AddMetadata(string, GgufValue)"/> checks it. The array
    /// is held, not copied, until the file is written: do not change it meanwhile.</summary>
    public GgufWriter AddMetadata(string key, bool[] value) => AddArray(key, GgufValueType.Bool, value);

    GgufWriter AddArray(string key, GgufValueType elementType, Array value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return AddMetadata(key, new GgufValue(GgufValueType.Array, value, elementType));
    }

    static void ValidateValue(string key, GgufValue value)
    {
        if (!GgufValueTypes.IsDefined((uint)value.Type))
            throw new ArgumentException($"metadata '{key}' has unknown value type {(uint)value.Type}", nameof(value));
        if (value.Type != GgufValueType.Array)
        {
            if (value.ElementType != value.Type)
                throw new ArgumentException($"metadata '{key}': a scalar's element type must equal its type", nameof(value));
            if (!ScalarMatches(value.Type, value.Value))
                throw new ArgumentException($"metadata '{key}' of type {value.TypeName} holds a {value.Value?.GetType().Name ?? "null"}", nameof(value));
            if (value.Value is string s) CheckString(key, s, $"metadata '{key}' value");
            return;
        }
        var elem = value.ElementType;
        if (elem == GgufValueType.Array)
            throw new ArgumentException($"metadata '{key}' is an array of arrays, which GGUF readers reject", nameof(value));
        if (!GgufValueTypes.IsDefined((uint)elem))
            throw new ArgumentException($"metadata '{key}' has unknown array element type {(uint)elem}", nameof(value));
        if (value.Value is not Array array || array.GetType() != ArrayClrType(elem))
            throw new ArgumentException($"metadata '{key}' of type {value.TypeName} holds a {value.Value?.GetType().Name ?? "null"}", nameof(value));
        if (array.LongLength > GgufLimits.MaxArrayElements)
            throw new ArgumentException($"metadata '{key}' has {array.LongLength} elements, over the cap of {GgufLimits.MaxArrayElements}", nameof(value));
        if (array is string[] strings)
            for (int i = 0; i < strings.Length; i++)
            {
                if (strings[i] is null) throw new ArgumentException($"metadata '{key}'[{i}] is null", nameof(value));
                CheckString(key, strings[i], $"metadata '{key}'[{i}]");
            }
    }

    static void CheckString(string key, string s, string what)
    {
        long n = Utf8Length(s, what, "value");
        if (n > GgufLimits.MaxStringBytes)
            throw new ArgumentException($"{what} is {n} bytes, over the cap of {GgufLimits.MaxStringBytes}", "value");
    }

    static bool ScalarMatches(GgufValueType type, object? v) => type switch
    {
        GgufValueType.UInt8 => v is byte, GgufValueType.Int8 => v is sbyte,
        GgufValueType.UInt16 => v is ushort, GgufValueType.Int16 => v is short,
        GgufValueType.UInt32 => v is uint, GgufValueType.Int32 => v is int,
        GgufValueType.UInt64 => v is ulong, GgufValueType.Int64 => v is long,
        GgufValueType.Float32 => v is float, GgufValueType.Float64 => v is double,
        GgufValueType.Bool => v is bool, GgufValueType.String => v is string,
        _ => false,
    };

    static Type ArrayClrType(GgufValueType elem) => elem switch
    {
        GgufValueType.UInt8 => typeof(byte[]), GgufValueType.Int8 => typeof(sbyte[]),
        GgufValueType.UInt16 => typeof(ushort[]), GgufValueType.Int16 => typeof(short[]),
        GgufValueType.UInt32 => typeof(uint[]), GgufValueType.Int32 => typeof(int[]),
        GgufValueType.UInt64 => typeof(ulong[]), GgufValueType.Int64 => typeof(long[]),
        GgufValueType.Float32 => typeof(float[]), GgufValueType.Float64 => typeof(double[]),
        GgufValueType.Bool => typeof(bool[]), GgufValueType.String => typeof(string[]),
        _ => typeof(void),
    };

    /// <summary>UTF-8 byte count; a string with unpaired surrogates has no UTF-8 form and is rejected.</summary>
    static long Utf8Length(string s, string what, string param)
    {
        try { return StrictUtf8.GetByteCount(s); }
        catch (EncoderFallbackException)
        {
            throw new ArgumentException($"{what} contains an unpaired surrogate and cannot be encoded as UTF-8", param);
        }
    }

    // ---------------------------------------------------------------- tensors

    /// <summary>Adds a tensor whose bytes are held in memory (by reference, until the file is written).</summary>
    /// <param name="name">The tensor name: 1 to 63 bytes of UTF-8, not yet added.</param>
    /// <param name="type">The storage type; <paramref name="data"/> must already be in it.</param>
    /// <param name="shapeGgmlOrder">1 to 4 non-negative dimensions in ggml order (ne0, the contiguous dimension,
    /// first); ne0 must be whole blocks of <paramref name="type"/>. Copied.</param>
    /// <param name="data">The tensor's bytes: exactly <see cref="TensorByteSize"/> of them.</param>
    /// <returns>This writer.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> or <paramref name="shapeGgmlOrder"/> is null.</exception>
    /// <exception cref="ArgumentException">The name is empty, too long, not encodable or already added; the type is
    /// unknown; the shape breaks a rule above or overflows; or <paramref name="data"/> has the wrong length.</exception>
    public GgufWriter AddTensor(string name, GgmlType type, long[] shapeGgmlOrder, ReadOnlyMemory<byte> data)
    {
        long size = ValidateTensor(name, type, shapeGgmlOrder);
        if (data.Length != size)
            throw new ArgumentException($"tensor '{name}' {type} {Shape(shapeGgmlOrder)} takes {size} bytes, but {data.Length} were given", nameof(data));
        Register(new PendingTensor(name, type, (long[])shapeGgmlOrder.Clone(), size, data, null));
        return this;
    }

    /// <summary>Adds a tensor whose bytes are produced when the file is written: <paramref name="writeData"/> must write
    /// exactly <paramref name="byteCount"/> bytes to the stream it is given (checked; a mismatch aborts the write with an
    /// <see cref="InvalidOperationException"/>). It is called once per write, in tensor order.</summary>
    /// <param name="name">The tensor name: 1 to 63 bytes of UTF-8, not yet added.</param>
    /// <param name="type">The storage type the delegate writes.</param>
    /// <param name="shapeGgmlOrder">As for <see cref="AddTensor(string, GgmlType, long[], ReadOnlyMemory{byte})"/>. Copied.</param>
    /// <param name="byteCount">The tensor's size: must equal <see cref="TensorByteSize"/> for the type and shape.</param>
    /// <param name="writeData">Writes the tensor's bytes to the stream it is given (write-only, not seekable).</param>
    /// <returns>This writer.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="name"/>, <paramref name="shapeGgmlOrder"/> or
    /// <paramref name="writeData"/> is null.</exception>
    /// <exception cref="ArgumentException">As for the in-memory overload, or <paramref name="byteCount"/> is not the
    /// size of the shape in the type.</exception>
    public GgufWriter AddTensor(string name, GgmlType type, long[] shapeGgmlOrder, long byteCount, Action<Stream> writeData)
    {
        ArgumentNullException.ThrowIfNull(writeData);
        long size = ValidateTensor(name, type, shapeGgmlOrder);
        if (byteCount != size)
            throw new ArgumentException($"tensor '{name}' {type} {Shape(shapeGgmlOrder)} takes {size} bytes, but {byteCount} were declared", nameof(byteCount));
        Register(new PendingTensor(name, type, (long[])shapeGgmlOrder.Clone(), size, null, writeData));
        return this;
    }

    /// <summary>Bytes a tensor of this type and shape takes (validating the shape as <see cref="AddTensor(string, GgmlType, long[], ReadOnlyMemory{byte})"/> does).</summary>
    /// <param name="type">The storage type.</param>
    /// <param name="shapeGgmlOrder">1 to 4 non-negative dimensions in ggml order; ne0 whole blocks of the type.</param>
    /// <exception cref="ArgumentNullException"><paramref name="shapeGgmlOrder"/> is null.</exception>
    /// <exception cref="ArgumentException">The type is unknown, or the shape breaks a rule or overflows.</exception>
    public static long TensorByteSize(GgmlType type, long[] shapeGgmlOrder) => ValidateShape("tensor", type, shapeGgmlOrder);

    void Register(PendingTensor t)
    {
        _tensorNames.Add(t.Name);
        _tensors.Add(t);
    }

    long ValidateTensor(string name, GgmlType type, long[] shape)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0) throw new ArgumentException("tensor name is empty", nameof(name));
        long nameBytes = Utf8Length(name, $"tensor name '{name}'", nameof(name));
        if (nameBytes > GgufLimits.MaxTensorNameBytes)
            throw new ArgumentException($"tensor name '{name}' is {nameBytes} bytes, over ggml's limit of {GgufLimits.MaxTensorNameBytes}", nameof(name));
        if (_tensorNames.Contains(name)) throw new ArgumentException($"duplicate tensor name '{name}'", nameof(name));
        return ValidateShape(name, type, shape);
    }

    static long ValidateShape(string name, GgmlType type, long[] shapeGgmlOrder)
    {
        ArgumentNullException.ThrowIfNull(shapeGgmlOrder);
        if (!GgmlTypes.TryGet((uint)type, out var info))
            throw new ArgumentException($"tensor '{name}' has unknown ggml type {(uint)type}", nameof(type));
        if (shapeGgmlOrder.Length is 0 or > GgufLimits.MaxDimensions)
            throw new ArgumentException($"tensor '{name}' has {shapeGgmlOrder.Length} dimensions; GGUF allows 1..{GgufLimits.MaxDimensions}", nameof(shapeGgmlOrder));
        foreach (var d in shapeGgmlOrder)
            if (d < 0) throw new ArgumentException($"tensor '{name}' has a negative dimension in {Shape(shapeGgmlOrder)}", nameof(shapeGgmlOrder));
        long elements = 1;
        // Any zero dimension makes an empty tensor, whatever the product of the others (as the reader counts).
        if (shapeGgmlOrder.Contains(0)) elements = 0;
        else
            foreach (var d in shapeGgmlOrder)
            {
                try { elements = checked(elements * d); }
                catch (OverflowException) { throw new ArgumentException($"tensor '{name}' element count {Shape(shapeGgmlOrder)} overflows 64 bits", nameof(shapeGgmlOrder)); }
            }
        if (shapeGgmlOrder[0] % info.BlockSize != 0)
            throw new ArgumentException($"tensor '{name}' row length {shapeGgmlOrder[0]} is not a multiple of the {info.Name} block size {info.BlockSize}", nameof(shapeGgmlOrder));
        long rows = shapeGgmlOrder[0] == 0 ? 0 : elements / shapeGgmlOrder[0];
        return info.TryByteSize(shapeGgmlOrder[0], rows)
            ?? throw new ArgumentException($"tensor '{name}' byte size {Shape(shapeGgmlOrder)} overflows 64 bits", nameof(shapeGgmlOrder));
    }

    static string Shape(long[] shape) => "[" + string.Join(", ", shape) + "]";

    // ---------------------------------------------------------------- layout

    /// <summary>Offsets of each tensor relative to the data section, in insertion order, and the data section's size
    /// (each tensor padded to the alignment, as llama.cpp does).</summary>
    /// <exception cref="OverflowException">The data section would be over 2^63 bytes.</exception>
    public (long[] Offsets, long DataSize) Layout()
    {
        uint align = Alignment;
        var offsets = new long[_tensors.Count];
        long at = 0;
        for (int i = 0; i < _tensors.Count; i++)
        {
            offsets[i] = at;
            at = AlignUp(checked(at + _tensors[i].ByteSize), align);
        }
        return (offsets, at);
    }

    /// <summary>The header (magic through tensor infos) padded to the alignment: the data section starts right after it.
    /// With no tensors there is no data section and no padding.</summary>
    public byte[] HeaderBytes()
    {
        var ms = new MemoryStream();
        WriteHeader(ms, Layout().Offsets);
        return ms.ToArray();
    }

    /// <summary>Total size of the file this writer produces.</summary>
    public long FileSize => checked(HeaderBytes().LongLength + Layout().DataSize);

    void WriteHeader(Stream s, long[] offsets)
    {
        var b = new byte[8];
        void U32(uint v) { BinaryPrimitives.WriteUInt32LittleEndian(b, v); s.Write(b, 0, 4); }
        void U64(ulong v) { BinaryPrimitives.WriteUInt64LittleEndian(b, v); s.Write(b, 0, 8); }
        void Str(string v) { var bytes = StrictUtf8.GetBytes(v); U64((ulong)bytes.Length); s.Write(bytes); }

        U32(GgufFile.Magic);
        U32(Version);
        U64((ulong)_tensors.Count);
        U64((ulong)_metadata.Count);
        foreach (var (key, value) in _metadata)
        {
            Str(key);
            U32((uint)value.Type);
            if (value.Type == GgufValueType.Array)
            {
                var array = (Array)value.Value;
                U32((uint)value.ElementType);
                U64((ulong)array.Length);
                foreach (var item in array) WriteScalar(s, value.ElementType, item!);
            }
            else WriteScalar(s, value.Type, value.Value);
        }
        for (int i = 0; i < _tensors.Count; i++)
        {
            var t = _tensors[i];
            Str(t.Name);
            U32((uint)t.Shape.Length);
            foreach (var d in t.Shape) U64((ulong)d);
            U32((uint)t.Type);
            U64((ulong)offsets[i]);
        }
        // A file with no tensors (a vocabulary-only file) ends right after the header, as llama.cpp's vocab files do.
        if (_tensors.Count > 0) Pad(s, s.Position, Alignment);
    }

    static void WriteScalar(Stream s, GgufValueType type, object v)
    {
        Span<byte> b = stackalloc byte[8];
        switch (type)
        {
            case GgufValueType.UInt8: s.WriteByte((byte)v); break;
            case GgufValueType.Int8: s.WriteByte((byte)(sbyte)v); break;
            case GgufValueType.Bool: s.WriteByte((bool)v ? (byte)1 : (byte)0); break;
            case GgufValueType.UInt16: BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)v); s.Write(b[..2]); break;
            case GgufValueType.Int16: BinaryPrimitives.WriteInt16LittleEndian(b, (short)v); s.Write(b[..2]); break;
            case GgufValueType.UInt32: BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)v); s.Write(b[..4]); break;
            case GgufValueType.Int32: BinaryPrimitives.WriteInt32LittleEndian(b, (int)v); s.Write(b[..4]); break;
            case GgufValueType.Float32: BinaryPrimitives.WriteSingleLittleEndian(b, (float)v); s.Write(b[..4]); break;
            case GgufValueType.UInt64: BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)v); s.Write(b[..8]); break;
            case GgufValueType.Int64: BinaryPrimitives.WriteInt64LittleEndian(b, (long)v); s.Write(b[..8]); break;
            case GgufValueType.Float64: BinaryPrimitives.WriteDoubleLittleEndian(b, (double)v); s.Write(b[..8]); break;
            case GgufValueType.String:
                var bytes = StrictUtf8.GetBytes((string)v);
                BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)bytes.Length);
                s.Write(b[..8]);
                s.Write(bytes);
                break;
            default: throw new InvalidOperationException($"cannot write a scalar of type {type}");
        }
    }

    static long AlignUp(long v, uint align) => checked(v + align - 1) / align * align;

    static readonly byte[] Zeros = new byte[64 * 1024];

    static void Pad(Stream s, long position, uint align) => WriteZeros(s, AlignUp(position, align) - position);

    static void WriteZeros(Stream s, long n)
    {
        while (n > 0)
        {
            int k = (int)Math.Min(n, Zeros.Length);
            s.Write(Zeros, 0, k);
            n -= k;
        }
    }

    // ---------------------------------------------------------------- output

    /// <summary>Writes the whole file to a stream (which need not be seekable). A failure leaves a partial file in the
    /// stream; <see cref="WriteTo(string)"/> cleans up after itself.</summary>
    /// <param name="stream">Where to write, from its current position.</param>
    /// <exception cref="ArgumentNullException"><paramref name="stream"/> is null.</exception>
    /// <exception cref="InvalidOperationException">A tensor's data delegate wrote more or fewer bytes than declared.</exception>
    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var (offsets, _) = Layout();
        var header = new MemoryStream();
        WriteHeader(header, offsets);
        header.Position = 0;
        header.CopyTo(stream);
        uint align = Alignment;
        long written = 0; // relative to the data section
        for (int i = 0; i < _tensors.Count; i++)
        {
            var t = _tensors[i];
            WriteZeros(stream, offsets[i] - written);
            if (t.Data is { } data) stream.Write(data.Span);
            else
            {
                var counter = new CountingStream(stream, t.ByteSize, t.Name);
                t.Writer!(counter);
                if (counter.Count != t.ByteSize)
                    throw new InvalidOperationException($"tensor '{t.Name}': the data delegate wrote {counter.Count} bytes, expected {t.ByteSize}");
            }
            written = offsets[i] + t.ByteSize;
        }
        if (_tensors.Count > 0) WriteZeros(stream, AlignUp(written, align) - written);
    }

    /// <summary>Writes the file atomically: to "path.tmp-XXXX" in the same folder, flushed to disk, then renamed over
    /// <paramref name="path"/>. On any failure the temporary file is deleted and the target is left untouched.
    /// An existing file at <paramref name="path"/> is replaced.</summary>
    /// <param name="path">The file to create or replace; its folder must exist.</param>
    /// <exception cref="ArgumentException"><paramref name="path"/> is null or empty.</exception>
    /// <exception cref="InvalidOperationException">A tensor's data delegate wrote more or fewer bytes than declared.</exception>
    /// <exception cref="IOException">The file cannot be written or moved into place.</exception>
    public void WriteTo(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = System.IO.Path.GetFullPath(path);
        var tmp = full + ".tmp-" + Guid.NewGuid().ToString("N")[..12];
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                WriteTo(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>The whole file in memory (for tests and small files).</summary>
    public byte[] ToArray()
    {
        var ms = new MemoryStream();
        WriteTo(ms);
        return ms.ToArray();
    }

    /// <summary>Passes writes through and counts them; a write past the tensor's size fails before it reaches the file
    /// (a short write is caught by the caller once the delegate returns).</summary>
    sealed class CountingStream(Stream inner, long limit, string name) : Stream
    {
        public long Count { get; private set; }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Count; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (buffer.Length > limit - Count)
                throw new InvalidOperationException($"tensor '{name}': the data delegate wrote more than the {limit} bytes declared");
            inner.Write(buffer);
            Count += buffer.Length;
        }
        public override void WriteByte(byte value) => Write([value]);
    }
}
