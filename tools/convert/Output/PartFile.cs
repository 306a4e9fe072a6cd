namespace Engine.Convert.Output;

/// <summary>Writes OUT as OUT.part and renames it when complete, so a file carrying the final name is always whole;
/// an interrupted or failed write removes the .part file.</summary>
public static class PartFile
{
    public static void Write(string path, bool overwrite, long expectedBytes, Action<FileStream> write)
    {
        var full = Path.GetFullPath(path);
        if (File.Exists(full) && !overwrite) throw new ConvertException($"{path} exists (pass --force to replace it)");
        if (Directory.Exists(full)) throw new ConvertException($"{path} is a folder");
        var folder = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(folder);
        CheckFreeSpace(folder, expectedBytes);
        var part = full + ".part";
        try
        {
            using (var fs = new FileStream(part, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(part, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(part); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>Fails before writing when the disk cannot hold the file (big presets are tens of GB).</summary>
    public static void CheckFreeSpace(string folder, long expectedBytes)
    {
        long free;
        try { free = new DriveInfo(folder).AvailableFreeSpace; }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException) { return; } // unknown: just try
        if (free < expectedBytes)
            throw new ConvertException($"not enough disk space in {folder}: the file takes {Units.Size(expectedBytes)}, {Units.Size(free)} is free");
    }
}
