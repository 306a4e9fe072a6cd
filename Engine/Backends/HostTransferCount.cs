namespace Engine.Backends;

/// <summary>A backend with memory of its own (a GPU) that counts the copies between host and device its
/// forward-pass operations make, so tests and `engine bench` can show what crosses per step.</summary>
internal interface IHostTransfers
{
    HostTransferCount HostTransfers { get; }
}

/// <summary>Counts the copies between host and device that forward-pass operations make: a decode step should make
/// one upload (its batch: token ids, positions, KV slots and block tables, once per step) and one read (the logits);
/// MoE routing and the shared-expert gate stay on the device. Not counted: what is uploaded once per model (the
/// weights themselves, and the RoPE rate table made at the first RoPE call).</summary>
internal sealed class HostTransferCount
{
    public long Uploads { get; private set; }
    public long UploadedBytes { get; private set; }
    public long Reads { get; private set; }
    public long ReadBytes { get; private set; }

    public void CountUpload(long bytes) { Uploads++; UploadedBytes += bytes; }
    public void CountRead(long bytes) { Reads++; ReadBytes += bytes; }

    /// <summary>The counts now, to subtract from later ones.</summary>
    public HostTransferSnapshot Snapshot() => new(Uploads, UploadedBytes, Reads, ReadBytes);

    public override string ToString() => Snapshot().ToString();
}

/// <summary>Copies counted at one moment, or between two (<see cref="op_Subtraction"/>), or per token.</summary>
internal readonly record struct HostTransferSnapshot(double Uploads, double UploadedBytes, double Reads, double ReadBytes)
{
    public static HostTransferSnapshot operator -(HostTransferSnapshot a, HostTransferSnapshot b) =>
        new(a.Uploads - b.Uploads, a.UploadedBytes - b.UploadedBytes, a.Reads - b.Reads, a.ReadBytes - b.ReadBytes);

    public static HostTransferSnapshot operator +(HostTransferSnapshot a, HostTransferSnapshot b) =>
        new(a.Uploads + b.Uploads, a.UploadedBytes + b.UploadedBytes, a.Reads + b.Reads, a.ReadBytes + b.ReadBytes);

    public HostTransferSnapshot Per(double count) => new(Uploads / count, UploadedBytes / count, Reads / count, ReadBytes / count);

    public override string ToString() =>
        $"{Uploads:0.##} upload{(Uploads == 1 ? "" : "s")} ({Bytes(UploadedBytes)}), {Reads:0.##} read{(Reads == 1 ? "" : "s")} ({Bytes(ReadBytes)})";

    static string Bytes(double b) => b < 1024 ? $"{b:0.#} B" : b < 1 << 20 ? $"{b / 1024:0.#} KiB" : $"{b / 1048576:0.#} MiB";
}
