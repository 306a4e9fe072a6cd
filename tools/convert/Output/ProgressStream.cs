using System.Diagnostics;
using System.Globalization;

namespace Engine.Convert.Output;

/// <summary>Passes writes to the file, counting them, stopping at cancellation (Ctrl-C) and reporting progress on
/// stderr at most once a second: tensor i/N, MiB written, rate. On a terminal the line updates in place.</summary>
public sealed class ProgressStream(Stream inner, TextWriter? log, long totalBytes, int tensorCount, CancellationToken cancel) : Stream
{
    readonly Stopwatch _clock = Stopwatch.StartNew();
    readonly bool _inPlace = log == Console.Error && !Console.IsErrorRedirected;
    long _lastReport = -1;

    public long Written { get; private set; }
    /// <summary>The tensor being written (1-based) and its name, for the report.</summary>
    public int TensorNumber { get; set; }
    public string TensorName { get; set; } = "(metadata)";

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => Written;
    public override long Position { get => Written; set => throw new NotSupportedException(); }
    public override void Flush() => inner.Flush();
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        cancel.ThrowIfCancellationRequested();
        inner.Write(buffer);
        Written += buffer.Length;
        long second = _clock.ElapsedMilliseconds / 1000;
        if (second != _lastReport) { _lastReport = second; Report(final: false); }
    }

    public void Report(bool final)
    {
        if (log is null) return;
        double mib = Written / 1048576.0, seconds = Math.Max(_clock.Elapsed.TotalSeconds, 1e-3);
        string line = string.Create(CultureInfo.InvariantCulture,
            $"tensor {TensorNumber}/{tensorCount} {TensorName,-28} {mib,9:0.0} / {totalBytes / 1048576.0:0.0} MiB  {mib / seconds,6:0} MiB/s");
        if (_inPlace) log.Write("\r" + line + (final ? "\n" : ""));
        else log.WriteLine(line);
    }
}
