using System.Buffers.Binary;
using System.Text;
using Engine.Formats;
using Engine.Formats.Safetensors;

namespace Engine.Tests.Safetensors;

/// <summary>Writes tiny Safetensors files in memory: a valid header from a list of tensors (offsets computed in
/// order), or any header text the test supplies, so each corruption is one visible edit of valid input.</summary>
internal sealed class SafetensorsBuilder
{
    readonly List<(string Name, string DType, long[] Shape, byte[] Data)> _tensors = [];
    public Dictionary<string, string>? Metadata { get; set; } = new() { ["format"] = "pt" };

    public SafetensorsBuilder Add(string name, string dtype, long[] shape, byte[] data)
    {
        _tensors.Add((name, dtype, shape, data));
        return this;
    }

    public SafetensorsBuilder AddF32(string name, long[] shape, params float[] values)
    {
        var data = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), values[i]);
        return Add(name, "F32", shape, data);
    }

    /// <summary>The reference sample used by the corruption corpus: "a" F32 [2,3] (24 bytes) then "b" F16 [4]
    /// (8 bytes): a 32-byte buffer.</summary>
    public static SafetensorsBuilder Sample() => new SafetensorsBuilder()
        .AddF32("a", [2, 3], 1, 2, 3, 4, 5, 6)
        .Add("b", "F16", [4], [0x00, 0x3C, 0x00, 0x40, 0x00, 0x42, 0x00, 0x44]); // 1, 2, 3, 4 in half precision

    /// <summary>The header JSON, compact and in declaration order.</summary>
    public string HeaderJson()
    {
        var json = new StringBuilder("{");
        if (Metadata is not null)
            json.Append("\"__metadata__\":{")
                .Append(string.Join(",", Metadata.Select(kv => $"\"{kv.Key}\":\"{kv.Value}\"")))
                .Append("},");
        long offset = 0;
        foreach (var (name, dtype, shape, data) in _tensors)
        {
            json.Append($"\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{string.Join(",", shape)}],")
                .Append($"\"data_offsets\":[{offset},{offset + data.Length}]}},");
            offset += data.Length;
        }
        if (json[^1] == ',') json.Length--;
        return json.Append('}').ToString();
    }

    public byte[] Buffer() => _tensors.SelectMany(t => t.Data).ToArray();

    public byte[] Build() => Assemble(HeaderJson(), Buffer());

    /// <summary>Length prefix + header (space-padded to a multiple of <paramref name="padTo"/>, as writers do) +
    /// buffer. <paramref name="declaredLength"/> overrides the length prefix.</summary>
    public static byte[] Assemble(string headerJson, byte[] buffer, int padTo = 8, ulong? declaredLength = null) =>
        Assemble(Encoding.UTF8.GetBytes(headerJson), buffer, padTo, declaredLength);

    public static byte[] Assemble(byte[] header, byte[] buffer, int padTo = 8, ulong? declaredLength = null)
    {
        int padded = padTo <= 1 ? header.Length : (header.Length + padTo - 1) / padTo * padTo;
        var bytes = new byte[8 + padded + buffer.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredLength ?? (ulong)padded);
        header.CopyTo(bytes, 8);
        bytes.AsSpan(8 + header.Length, padded - header.Length).Fill((byte)' ');
        buffer.CopyTo(bytes, 8 + padded);
        return bytes;
    }

    /// <summary>Parses bytes as a file, through the public in-memory entry point; the caller disposes the result.</summary>
    public static SafetensorsFile Parse(byte[] bytes) => SafetensorsFile.Parse(bytes, "<test>");

    /// <summary>Parses bytes that must be rejected, and returns the rejection.</summary>
    public static ModelFormatException Reject(byte[] bytes)
    {
        try
        {
            using var file = Parse(bytes);
        }
        catch (ModelFormatException e)
        {
            return e;
        }
        throw new Xunit.Sdk.XunitException("the file was accepted, but it should have been rejected");
    }
}
