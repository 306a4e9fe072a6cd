using ILGPU;
using ILGPU.Runtime;

namespace Engine.Gpu;

/// <summary>A device buffer for values the host sends each step (the token ids), or for a kernel's scratch (a
/// GPTQ linear's gathered input). It grows only when a larger batch than any before arrives, so steady-state steps
/// allocate nothing.</summary>
internal sealed class DeviceStaging<T>(Accelerator accelerator, DeviceBuffers buffers, DeviceMemoryBudget budget, string name) : IDisposable where T : unmanaged
{
    MemoryBuffer1D<T, Stride1D.Dense>? _buffer;

    /// <summary>Copies values to the device (synchronously: the span may be reused at once) and returns their view.</summary>
    public ArrayView<T> Upload(ReadOnlySpan<T> values)
    {
        var view = Space(values.Length);
        if (values.Length > 0) view.CopyFromCPU(accelerator.DefaultStream, values);
        return view;
    }

    /// <summary>A view of `length` elements whose contents are whatever the last user left there.</summary>
    public ArrayView<T> Space(long length)
    {
        if (_buffer is null || _buffer.Length < length)
        {
            long capacity = Math.Max(64, length);
            // Kernels still queued may read the old buffer (an earlier step's batch): let them finish before it goes.
            if (_buffer is not null) accelerator.Synchronize();
            Dispose();
            budget.Reserve(capacity * System.Runtime.CompilerServices.Unsafe.SizeOf<T>(), name);
            _buffer = buffers.Allocate<T>(capacity);
        }
        return _buffer.View.SubView(0, length);
    }

    public void Dispose()
    {
        if (_buffer is null) return;
        budget.Release(_buffer.LengthInBytes);
        buffers.Free(_buffer);
        _buffer = null;
    }
}
