namespace Engine.Gpu;

/// <summary>Device memory the backend has taken, checked against the accelerator's size before each
/// allocation, so a model that does not fit fails with a message naming what did not fit instead of a
/// driver error halfway through the upload.</summary>
/// <remarks>Thread-safe: a KV cache may be disposed, and its reservation released, on another thread than the one
/// running the model.</remarks>
internal sealed class DeviceMemoryBudget(long capacity)
{
    readonly Lock _lock = new();
    long _used;

    public long Capacity { get; } = capacity;
    public long Used
    {
        get { lock (_lock) return _used; }
    }

    public void Reserve(long bytes, string what)
    {
        lock (_lock)
        {
            if (bytes > Capacity - _used) throw new DeviceMemoryException(what, bytes, _used, Capacity);
            _used += bytes;
        }
    }

    public void Release(long bytes)
    {
        lock (_lock) _used -= bytes;
    }
}

/// <summary>What was asked of a GPU does not fit in its memory (the model's layers, a KV cache); the message says how
/// much is needed and what to do (fewer GPU layers, a smaller context, the CPU).</summary>
public sealed class DeviceMemoryException : InvalidOperationException
{
    internal DeviceMemoryException(string what, long bytes, long used, long capacity, string? advice = null)
        : base($"{what} needs {Mib(bytes)} MiB of device memory, " +
               (used == 0 ? $"more than the device's {Mib(capacity)} MiB; " : $"but {Mib(used)} of the device's {Mib(capacity)} MiB are already taken; ") +
               (advice ?? "use a smaller --ctx, fewer --gpu-layers, a smaller model or quantization, or --device cpu"))
    {
        RequiredBytes = bytes;
        CapacityBytes = capacity;
    }

    /// <summary>Bytes of device memory that were needed.</summary>
    public long RequiredBytes { get; }
    /// <summary>Bytes of memory the device has.</summary>
    public long CapacityBytes { get; }
    static long Mib(long bytes) => (bytes + (1 << 20) - 1) >> 20;
}
