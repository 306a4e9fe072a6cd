using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Engine.Convert.Safetensors;

/// <summary>Writes a .safetensors file whose tensor bytes are produced on demand: the 8-byte header length, the JSON
/// header (padded with spaces to 8 bytes, as the reference writer does), then each tensor's bytes back to back in
/// the order added, so the header's data_offsets cover the buffer without holes.</summary>
public sealed class SafetensorsStreamWriter
{
    sealed record Entry(string Name, string DType, long[] Shape, long ByteSize, Action<Stream> Write);

    readonly List<Entry> _entries = [];
    readonly HashSet<string> _names = new(StringComparer.Ordinal);
    long _dataBytes;

    /// <summary>Adds a tensor; <paramref name="shape"/> is in PyTorch order (outermost first).</summary>
    public void Add(string name, string dtype, long[] shape, long byteSize, Action<Stream> write)
    {
        if (!_names.Add(name)) throw new ArgumentException($"duplicate tensor name '{name}'", nameof(name));
        _entries.Add(new Entry(name, dtype, shape, byteSize, write));
        _dataBytes += byteSize;
    }

    public int Count => _entries.Count;

    /// <summary>Every tensor's name, dtype and shape, in file order (for --dry-run).</summary>
    public IEnumerable<(string Name, string DType, long[] Shape)> Table => _entries.Select(e => (e.Name, e.DType, e.Shape));

    public byte[] HeaderBytes()
    {
        var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            w.WriteStartObject("__metadata__");
            w.WriteString("format", "pt");
            w.WriteEndObject();
            long at = 0;
            foreach (var e in _entries)
            {
                w.WriteStartObject(e.Name);
                w.WriteString("dtype", e.DType);
                w.WriteStartArray("shape");
                foreach (var d in e.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(at);
                w.WriteNumberValue(at + e.ByteSize);
                w.WriteEndArray();
                w.WriteEndObject();
                at += e.ByteSize;
            }
            w.WriteEndObject();
        }
        int length = (int)json.Length, padded = (length + 7) / 8 * 8;
        var header = new byte[8 + padded];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)padded);
        json.GetBuffer().AsSpan(0, length).CopyTo(header.AsSpan(8));
        header.AsSpan(8 + length).Fill((byte)' ');
        return header;
    }

    public long FileSize => HeaderBytes().LongLength + _dataBytes;

    public void WriteTo(Stream output)
    {
        output.Write(HeaderBytes());
        foreach (var e in _entries)
        {
            long before = output.Position;
            e.Write(output);
            if (output.Position - before != e.ByteSize)
                throw new InvalidOperationException($"tensor '{e.Name}': wrote {output.Position - before} bytes, expected {e.ByteSize}");
        }
    }
}
