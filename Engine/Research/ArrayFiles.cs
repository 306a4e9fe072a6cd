using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace Engine.Research;

/// <summary>An array to save: float32 values or int32 values, row-major, of the given shape.</summary>
internal sealed record NamedArray(string Name, int[] Shape, float[]? Floats, int[]? Ints)
{
    public long ByteLength => 4L * (Floats?.Length ?? Ints!.Length);
    public ReadOnlySpan<byte> Bytes => Floats is not null
        ? System.Runtime.InteropServices.MemoryMarshal.AsBytes(Floats.AsSpan())
        : System.Runtime.InteropServices.MemoryMarshal.AsBytes(Ints.AsSpan());
}

/// <summary>Writers of the array files Python reads: numpy's .npz (a zip of .npy files) and Hugging Face's .safetensors.
/// Both little-endian float32/int32, as this machine's memory is.</summary>
internal static class ArrayFiles
{
    /// <summary>Writes through `write` into a temporary file beside `path`, then renames it over `path`.</summary>
    public static void WriteAtomically(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        var temp = full + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write)) write(stream);
            File.Move(temp, full, overwrite: true);
        }
        finally { if (File.Exists(temp)) File.Delete(temp); }
    }

    /// <summary>numpy's .npz: a zip archive with NAME.npy per array (format 1.0 headers, uncompressed, as np.savez).</summary>
    public static void WriteNpz(Stream stream, IEnumerable<NamedArray> arrays)
    {
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
        foreach (var array in arrays)
        {
            var entry = zip.CreateEntry(array.Name + ".npy", CompressionLevel.NoCompression);
            using var output = entry.Open();
            output.Write(NpyHeader(array));
            output.Write(array.Bytes);
        }
    }

    /// <summary>The .npy 1.0 header: magic, version, header length, then a Python dict literal padded with spaces to a
    /// multiple of 64 bytes and ended by a newline.</summary>
    static byte[] NpyHeader(NamedArray array)
    {
        var shape = array.Shape.Length == 1 ? $"({array.Shape[0]},)" : "(" + string.Join(", ", array.Shape) + ")";
        var dict = $"{{'descr': '{(array.Floats is not null ? "<f4" : "<i4")}', 'fortran_order': False, 'shape': {shape}, }}";
        int unpadded = 10 + dict.Length + 1;
        int padding = (64 - unpadded % 64) % 64;
        var header = dict + new string(' ', padding) + "\n";
        var bytes = new byte[10 + header.Length];
        bytes[0] = 0x93;
        "NUMPY"u8.CopyTo(bytes.AsSpan(1));
        bytes[6] = 1; bytes[7] = 0;
        BitConverter.TryWriteBytes(bytes.AsSpan(8), (ushort)header.Length);
        Encoding.ASCII.GetBytes(header, bytes.AsSpan(10));
        return bytes;
    }

    /// <summary>Hugging Face's .safetensors: an 8-byte header length, a JSON header naming each tensor's dtype, shape and
    /// byte range, then the data.</summary>
    public static void WriteSafetensors(Stream stream, IReadOnlyList<NamedArray> arrays)
    {
        var header = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["__metadata__"] = new Dictionary<string, string> { ["format"] = "np", ["producer"] = "Engine" },
        };
        long offset = 0;
        foreach (var array in arrays)
        {
            header[array.Name] = new Dictionary<string, object>
            {
                ["dtype"] = array.Floats is not null ? "F32" : "I32",
                ["shape"] = array.Shape,
                ["data_offsets"] = new[] { offset, offset + array.ByteLength },
            };
            offset += array.ByteLength;
        }
        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        // The data starts 8-byte aligned: the header is padded with spaces, as the reference writer does.
        int padded = (json.Length + 7) / 8 * 8;
        Span<byte> length = stackalloc byte[8];
        BitConverter.TryWriteBytes(length, (ulong)padded);
        stream.Write(length);
        stream.Write(json);
        for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
        foreach (var array in arrays) stream.Write(array.Bytes);
    }
}
