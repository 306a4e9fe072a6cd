using System.Buffers.Binary;
using System.Diagnostics;
using Engine.Formats;
using Engine.Formats.Gguf;
using Xunit.Abstractions;

namespace Engine.Tests.Gguf;

/// <summary>A test that writes sparse files of tens of GiB in the temp folder: they take almost no real space where the
/// file system supports sparse files (Linux, macOS). Skipped, with the reason shown, elsewhere or when the temp
/// disk has under 2 GiB free.</summary>
public sealed class SparseFileFactAttribute : FactAttribute
{
    public SparseFileFactAttribute()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            Skip = "sparse temp files are only relied on under Linux and macOS";
            return;
        }
        try
        {
            long free = new DriveInfo(Path.GetPathRoot(Path.GetFullPath(Path.GetTempPath()))!).AvailableFreeSpace;
            if (free < 2L << 30) Skip = $"the temp disk has {free >> 20} MiB free; the sparse-file tests want 2 GiB to be safe";
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            Skip = "cannot tell how much space the temp disk has: " + e.Message;
        }
    }
}

/// <summary>Opening is independent of the size of the weights: a 10 GiB file opens as fast as a small one, maps
/// without reading, and allocates only its metadata.</summary>
public class GgufLargeFileTests(ITestOutputHelper output)
{
    const long GiB = 1L << 30;

    static string TempFile() => Path.Combine(Path.GetTempPath(), $"gguf-sparse-{Guid.NewGuid():N}.gguf");

    [SparseFileFact]
    public void Ten_GiB_sparse_file_opens_in_under_a_second_without_reading_the_weights()
    {
        // 10 tensors of 16384 x 16384 F32 = 1 GiB each; the data delegates are never called: only the header is written.
        var w = new GgufWriter().AddMetadata("general.architecture", "llama").AddMetadata(GgufKeys.Alignment, 64u);
        for (int i = 0; i < 10; i++)
            w.AddTensor($"blk.{i}.ffn_up.weight", GgmlType.F32, [16384, 16384], GiB, _ => throw new InvalidOperationException("data is not written"));
        var header = w.HeaderBytes();
        var (_, dataSize) = w.Layout();
        dataSize.Should().Be(10 * GiB);

        var path = TempFile();
        try
        {
            using (var fs = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
            {
                fs.Write(header);
                fs.SetLength(header.Length + dataSize); // sparse: no blocks allocated
            }
            new FileInfo(path).Length.Should().Be(w.FileSize);

            GgufFile.Open(path).Dispose(); // JIT and first-touch costs out of the measurement
            GC.Collect();
            var process = Process.GetCurrentProcess();
            process.Refresh();
            long workingSetBefore = process.WorkingSet64;
            long heapBefore = GC.GetTotalMemory(forceFullCollection: true);
            long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();

            var sw = Stopwatch.StartNew();
            using var f = GgufFile.Open(path);
            sw.Stop();

            long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
            long heapGrowth = GC.GetTotalMemory(forceFullCollection: false) - heapBefore;
            process.Refresh();
            long workingSetGrowth = process.WorkingSet64 - workingSetBefore;
            output.WriteLine($"opened {f.FileSize >> 20} MiB in {sw.Elapsed.TotalMilliseconds:F1} ms; allocated {allocated} B, heap +{heapGrowth} B, working set +{workingSetGrowth >> 10} KiB");

            sw.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(1));
            allocated.Should().BeLessThan(1 << 20);
            heapGrowth.Should().BeLessThan(100L << 20);
            workingSetGrowth.Should().BeLessThan(100L << 20, "the weights are mapped, not read");

            f.Tensors.Should().HaveCount(10);
            f.FileSize.Should().Be(header.Length + 10 * GiB);
            var last = f.GetTensor("blk.9.ffn_up.weight");
            last.ByteSize.Should().Be(GiB);
            (last.FileOffset + last.ByteSize).Should().Be(f.FileSize);
            last.Bytes[^16..].ToArray().Should().OnlyContain(b => b == 0);
            f.GetTensor("blk.0.ffn_up.weight").Bytes[..16].ToArray().Should().OnlyContain(b => b == 0);
        }
        finally { File.Delete(path); }
    }

    [SparseFileFact]
    public void A_declared_count_over_int_max_in_a_huge_file_is_rejected_cleanly()
    {
        // 32 GiB of zeros can hold 2^31 + 5 minimal metadata entries by the remaining-bytes check (14 bytes each), so
        // the count passes it; the reader must still not size anything by it (it once cast it to int: negative, and
        // threw ArgumentOutOfRangeException). The first key is empty, which is the error to report.
        var path = TempFile();
        try
        {
            using (var fs = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
            {
                var head = new byte[24];
                BinaryPrimitives.WriteUInt32LittleEndian(head, GgufFile.Magic);
                BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(4), 3);
                BinaryPrimitives.WriteUInt64LittleEndian(head.AsSpan(8), 0);
                BinaryPrimitives.WriteUInt64LittleEndian(head.AsSpan(16), (1UL << 31) + 5);
                fs.Write(head);
                fs.SetLength(24 + 32 * GiB);
            }
            long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
            var sw = Stopwatch.StartNew();
            var act = () => GgufFile.Open(path).Dispose();
            var e = act.Should().Throw<ModelFormatException>().Which;
            sw.Stop();
            long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
            output.WriteLine($"{e.Message}; {sw.Elapsed.TotalMilliseconds:F1} ms, allocated {allocated} B");
            e.Kind.Should().Be(FormatErrorKind.InvalidName);
            e.FilePath.Should().Be(path);
            sw.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(1));
            allocated.Should().BeLessThan(1 << 20);
        }
        finally { File.Delete(path); }
    }
}
