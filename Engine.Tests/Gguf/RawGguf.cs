using System.Buffers.Binary;
using System.Text;
using Engine.Formats;
using Engine.Formats.Gguf;

namespace Engine.Tests.Gguf;

/// <summary>Writes GGUF fields exactly as told, valid or not (the way llama.cpp's test-gguf.cpp hand-crafts
/// corrupt files), and records the offset of every field boundary so fuzzing can aim at them.</summary>
public sealed class RawGguf
{
    readonly MemoryStream _s = new();
    readonly byte[] _b = new byte[8];

    /// <summary>Offsets where a field starts or ends (0 and the end included).</summary>
    public SortedSet<long> Boundaries { get; } = [0];
    public long Position => _s.Position;

    RawGguf Mark() { Boundaries.Add(_s.Position); return this; }

    public RawGguf U8(byte v) { _s.WriteByte(v); return Mark(); }
    public RawGguf U16(ushort v) { BinaryPrimitives.WriteUInt16LittleEndian(_b, v); _s.Write(_b, 0, 2); return Mark(); }
    public RawGguf U32(uint v) { BinaryPrimitives.WriteUInt32LittleEndian(_b, v); _s.Write(_b, 0, 4); return Mark(); }
    public RawGguf U64(ulong v) { BinaryPrimitives.WriteUInt64LittleEndian(_b, v); _s.Write(_b, 0, 8); return Mark(); }
    public RawGguf F32(float v) { BinaryPrimitives.WriteSingleLittleEndian(_b, v); _s.Write(_b, 0, 4); return Mark(); }
    public RawGguf Bytes(ReadOnlySpan<byte> v) { _s.Write(v); return Mark(); }
    /// <summary>A GGUF string: u64 byte length, then the bytes.</summary>
    public RawGguf Str(string v) => Str(Encoding.UTF8.GetBytes(v));
    public RawGguf Str(byte[] v) => U64((ulong)v.Length).Bytes(v);

    public RawGguf Header(uint version, ulong tensorCount, ulong kvCount, uint magic = GgufFile.Magic) =>
        U32(magic).U32(version).U64(tensorCount).U64(kvCount);

    public RawGguf Zeros(long n) { for (long i = 0; i < n; i++) _s.WriteByte(0); return Mark(); }
    public RawGguf PadTo(uint alignment) => Zeros((alignment - _s.Position % alignment) % alignment);

    public byte[] ToArray() => _s.ToArray();
}

/// <summary>One tensor info as written to the file: every field raw, so a test can set any of them to nonsense.</summary>
public sealed class RawTensor
{
    public byte[] Name = [];
    public ulong[] Dims = [];
    public uint Type;
    /// <summary>Null: the running aligned sum (the correct value).</summary>
    public ulong? Offset;
    /// <summary>Bytes the data section reserves for it (computed from a valid shape; set by hand otherwise).</summary>
    public long DataBytes;

    public static RawTensor Of(string name, GgmlType type, params long[] shape) => new()
    {
        Name = Encoding.UTF8.GetBytes(name), Dims = shape.Select(d => (ulong)d).ToArray(), Type = (uint)type,
        DataBytes = GgufWriter.TensorByteSize(type, shape),
    };
}

/// <summary>A small valid GGUF file described field by field; tests change one field and build.
/// Default: 3 metadata entries (string, uint32, string array) and 3 tensors (F32, Q4_0, Q8_0), alignment 32.</summary>
public sealed class GgufSpec
{
    public uint Magic = GgufFile.Magic;
    public uint Version = 3;
    public ulong? TensorCount;
    public ulong? KvCount;
    /// <summary>Key bytes and a writer for the type id and value.</summary>
    public List<(byte[] Key, Action<RawGguf> TypeAndValue)> Kvs = [];
    public List<RawTensor> Tensors = [];
    /// <summary>Alignment used to lay out the file (set general.alignment separately to match).</summary>
    public uint Alignment = 32;

    public static GgufSpec Default() => new GgufSpec()
        .Kv("general.architecture", GgufValueType.String, w => w.Str("llama"))
        .Kv("llama.block_count", GgufValueType.UInt32, w => w.U32(2))
        .Kv("tokenizer.ggml.tokens", GgufValueType.Array, w => w.U32((uint)GgufValueType.String).U64(3).Str("a").Str("b").Str("<s>"))
        .Tensor(RawTensor.Of("token_embd.weight", GgmlType.F32, 4, 3))
        .Tensor(RawTensor.Of("blk.0.attn_q.weight", GgmlType.Q4_0, 32, 2))
        .Tensor(RawTensor.Of("output.weight", GgmlType.Q8_0, 64, 1));

    public GgufSpec Kv(string key, GgufValueType type, Action<RawGguf> value) => Kv(Encoding.UTF8.GetBytes(key), (uint)type, value);
    public GgufSpec Kv(byte[] key, uint type, Action<RawGguf> value)
    {
        Kvs.Add((key, w => { w.U32(type); value(w); }));
        return this;
    }
    public GgufSpec Tensor(RawTensor t) { Tensors.Add(t); return this; }

    /// <summary>The data-section offset each tensor gets when laid out correctly.</summary>
    public ulong[] CorrectOffsets()
    {
        var result = new ulong[Tensors.Count];
        long at = 0;
        for (int i = 0; i < Tensors.Count; i++)
        {
            result[i] = (ulong)at;
            at = (at + Tensors[i].DataBytes + Alignment - 1) / Alignment * Alignment;
        }
        return result;
    }

    /// <summary>Builds the bytes; <paramref name="raw"/> receives the writer (with its field boundaries).</summary>
    public byte[] Build(out RawGguf raw)
    {
        var w = raw = new RawGguf();
        w.Header(Version, TensorCount ?? (ulong)Tensors.Count, KvCount ?? (ulong)Kvs.Count, Magic);
        foreach (var (key, tv) in Kvs) { w.Str(key); tv(w); }
        var offsets = CorrectOffsets();
        for (int i = 0; i < Tensors.Count; i++)
        {
            var t = Tensors[i];
            w.Str(t.Name).U32((uint)t.Dims.Length);
            foreach (var d in t.Dims) w.U64(d);
            w.U32(t.Type).U64(t.Offset ?? offsets[i]);
        }
        if (Tensors.Count == 0) return w.ToArray();
        w.PadTo(Alignment);
        for (int i = 0; i < Tensors.Count; i++)
        {
            w.Bytes(Pattern(Tensors[i].DataBytes, i));
            w.PadTo(Alignment);
        }
        return w.ToArray();
    }

    public byte[] Build() => Build(out _);

    /// <summary>Recognisable tensor bytes: tensor i, byte j holds (j * 31 + i * 7 + 1) % 251.</summary>
    public static byte[] Pattern(long n, int i)
    {
        var b = new byte[n];
        for (long j = 0; j < n; j++) b[j] = (byte)((j * 31 + i * 7 + 1) % 251);
        return b;
    }
}
