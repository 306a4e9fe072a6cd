namespace Engine.Gpu;

/// <summary>Counts the copies between host and device that forward-pass operations make: a decode step should make
/// one upload (its token id) and one read (the logits); MoE routing, positions and the shared-expert gate stay on
/// the device. Not counted: what is uploaded once per model, like weights (the weights themselves, and the RoPE
/// rate table made at the first RoPE call).</summary>
public sealed class HostTransferCount
{
    public long Uploads { get; private set; }
    public long UploadedBytes { get; private set; }
    public long Reads { get; private set; }
    public long ReadBytes { get; private set; }

    internal void Uploaded(long bytes) { Uploads++; UploadedBytes += bytes; }
    internal void Read(long bytes) { Reads++; ReadBytes += bytes; }

    public override string ToString() => $"{Uploads} uploads ({UploadedBytes} B), {Reads} reads ({ReadBytes} B)";
}
