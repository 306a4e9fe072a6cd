using Engine.Formats;
using Engine.Formats.Gguf;

namespace Engine.Planning;

/// <summary>A GGUF file's header read from its first bytes, so a model on a hub can be sized before it is
/// downloaded.</summary>
internal static class RemoteHeader
{
    /// <summary>The first request: most headers fit (a Llama vocabulary of 32k tokens takes about 0.5 MiB), and the
    /// 150k-token vocabularies of Qwen and Llama 3 take a second one.</summary>
    public const int FirstChunk = 1 << 20;

    /// <summary>Headers beyond this are refused rather than read on: no real model's is near it.</summary>
    public const long MaxHeaderBytes = 256L << 20;

    /// <summary>Parses the header of a file of `fileSize` bytes, reading `read(offset, length)` ranges: the first chunk,
    /// then the header's next bytes (four times as many each time) while it runs past what was read.</summary>
    /// <exception cref="ModelFormatException">The header is corrupt, or the file ends inside it.</exception>
    public static GgufFile Read(Func<long, int, byte[]> read, long fileSize, string source)
    {
        try { return ReadGrowing(read, fileSize, source); }
        catch (ModelFormatException e) { throw e.WithFile(source); }
    }

    static GgufFile ReadGrowing(Func<long, int, byte[]> read, long fileSize, string source)
    {
        var head = read(0, (int)Math.Min(FirstChunk, fileSize));
        while (true)
        {
            try { return GgufFile.ParseHeader(head, fileSize, source); }
            catch (ModelFormatException e) when (e.Kind == FormatErrorKind.FileTooShort && head.Length < fileSize)
            {
                if (head.Length >= MaxHeaderBytes)
                    throw new ModelFormatException(FormatErrorKind.LengthTooLarge,
                        $"the GGUF header runs past {MaxHeaderBytes >> 20} MiB: not a model header this tool reads", filePath: source);
                long want = Math.Min(Math.Min(fileSize, MaxHeaderBytes), (long)head.Length * 4);
                var more = read(head.Length, (int)(want - head.Length));
                if (more.Length == 0) throw;
                head = [.. head, .. more];
            }
        }
    }
}
