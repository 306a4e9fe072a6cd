namespace Engine.Tests.Safetensors;

/// <summary>A fresh temporary folder, deleted with everything in it on Dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } =
        Directory.CreateDirectory(System.IO.Path.Combine(System.IO.Path.GetTempPath(), "engine-st-" + Guid.NewGuid().ToString("N"))).FullName;

    public string Write(string name, byte[] bytes)
    {
        string path = System.IO.Path.Combine(Path, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public string Write(string name, string text)
    {
        string path = System.IO.Path.Combine(Path, name);
        File.WriteAllText(path, text);
        return path;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { } // a leftover temp folder must not fail a test
        catch (UnauthorizedAccessException) { }
    }
}
