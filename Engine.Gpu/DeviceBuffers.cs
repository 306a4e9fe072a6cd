using Engine.Gpu.Kernels;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Gpu;

/// <summary>The device memory a backend holds, exactly: every buffer it allocates or uploads adds its size in
/// bytes, every one it frees takes it off again. Unlike <see cref="DeviceMemoryBudget"/>, whose reservations are
/// the estimates checked before allocating, this counts what the accelerator actually handed out, so a test can
/// see that a disposed cache or model returned every byte.</summary>
sealed class DeviceBuffers(Accelerator accelerator)
{
    long _bytesInUse;

    /// <summary>Bytes in the live buffers (read atomically: a cache may be disposed on another thread).</summary>
    public long BytesInUse => Interlocked.Read(ref _bytesInUse);

    public MemoryBuffer1D<T, Stride1D.Dense> Allocate<T>(long length) where T : unmanaged
    {
        var buffer = accelerator.Allocate1D<T>(length);
        Interlocked.Add(ref _bytesInUse, buffer.LengthInBytes);
        return buffer;
    }

    public MemoryBuffer1D<T, Stride1D.Dense> Allocate<T>(T[] values) where T : unmanaged
    {
        var buffer = accelerator.Allocate1D(values);
        Interlocked.Add(ref _bytesInUse, buffer.LengthInBytes);
        return buffer;
    }

    /// <summary>Counts a weight matrix the kernels uploaded (they allocate its buffer themselves).</summary>
    public DeviceMatrix Uploaded(DeviceMatrix matrix)
    {
        Interlocked.Add(ref _bytesInUse, matrix.Bytes);
        return matrix;
    }

    public void Free(MemoryBuffer buffer)
    {
        long bytes = buffer.LengthInBytes;
        buffer.Dispose();
        Interlocked.Add(ref _bytesInUse, -bytes);
    }

    public void Free(DeviceMatrix matrix)
    {
        long bytes = matrix.Bytes;
        matrix.Dispose();
        Interlocked.Add(ref _bytesInUse, -bytes);
    }
}
