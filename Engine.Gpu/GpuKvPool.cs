using Engine.Backends;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Gpu;

/// <summary>
/// The GPU's paged KV pool: the whole pool in device memory from its creation (a device allocation is too costly to
/// make per block in a step, and a pool that fits at creation cannot run out of memory halfway through a prompt).
/// Per layer one key buffer and one value buffer, each Blocks x BlockTokens rows (slot = block * BlockTokens +
/// offset) of KeyWidth or ValueWidth values in the pool's element type: float (F32), the bit patterns of halves (F16)
/// or ggml block_q8_0 bytes (Q8_0). Its buffers belong to the backend that made it: disposing the pool hands them back
/// at once, and the backend's own disposal frees the pools not yet disposed.
/// </summary>
internal sealed class GpuKvPool : KvBlockPool
{
    readonly Action<GpuKvPool> _release;
    readonly MemoryBuffer[] _keys, _values;
    long _bytes;

    /// <summary>A pool of `shape` whose memory is not allocated yet (<see cref="AllocateBuffers"/>); `release` frees it
    /// (its backend's bookkeeping), called once by the first Dispose.</summary>
    public GpuKvPool(KvPoolShape shape, Action<GpuKvPool> release) : base(shape)
    {
        _release = release;
        _keys = new MemoryBuffer[shape.Layers];
        _values = new MemoryBuffer[shape.Layers];
    }

    /// <summary>Allocates every layer's buffers, zeroed, through `buffers`. When the device refuses one, those already
    /// allocated stay listed in <see cref="Buffers"/> for the release to free.</summary>
    public void AllocateBuffers(DeviceBuffers buffers)
    {
        var shape = Shape;
        long rows = (long)shape.Blocks * shape.BlockTokens;
        for (int l = 0; l < shape.Layers; l++)
        {
            _keys[l] = Rows(buffers, rows, shape.KeyWidth, shape.Type);
            _values[l] = Rows(buffers, rows, shape.ValueWidth, shape.Type);
        }
        Interlocked.Exchange(ref _bytes, Buffers.Sum(b => b.LengthInBytes));
    }

    static MemoryBuffer Rows(DeviceBuffers buffers, long rows, int width, KvElementType type) => type switch
    {
        KvElementType.F32 => Zeroed<float>(buffers, rows * width),
        KvElementType.F16 => Zeroed<ushort>(buffers, rows * width),
        KvElementType.Q8_0 => Zeroed<byte>(buffers, rows * KvPoolShape.RowBytes(width, type)),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "no GPU storage for this KV element type"),
    };

    // Zeroed although attention reads only stored positions: a pool's contents never depend on what the memory held.
    static MemoryBuffer Zeroed<T>(DeviceBuffers buffers, long length) where T : unmanaged
    {
        var buffer = buffers.Allocate<T>(length);
        buffer.MemSetToZero();
        return buffer;
    }

    /// <summary>Device memory the pool holds: all of it from creation (Blocks x BlockBytes), 0 once disposed.</summary>
    public override long Bytes => IsDisposed ? 0 : Interlocked.Read(ref _bytes);

    /// <summary>The buffers allocated so far (all of them, unless an allocation failed).</summary>
    public IEnumerable<MemoryBuffer> Buffers => _keys.Concat(_values).Where(b => b is not null);

    /// <summary>Layer `layer`'s keys and values, stored as T (float, ushort or byte by the element type).</summary>
    public ArrayView<T> Keys<T>(int layer) where T : unmanaged => ((MemoryBuffer1D<T, Stride1D.Dense>)_keys[Layer(layer)]).View;
    public ArrayView<T> Values<T>(int layer) where T : unmanaged => ((MemoryBuffer1D<T, Stride1D.Dense>)_values[Layer(layer)]).View;

    int Layer(int layer) => (uint)layer < (uint)Shape.Layers ? layer
        : throw new ArgumentOutOfRangeException(nameof(layer), layer, $"the pool holds {Shape.Layers} layers");

    /// <summary>The pool an operation was handed, checked once for that operation.</summary>
    public static GpuKvPool Usable(KvBlockPool pool)
    {
        pool.ThrowIfDisposed();
        return pool as GpuKvPool ?? throw new ArgumentException($"{pool} is not in a GPU backend's memory", nameof(pool));
    }

    public override void CopyBlock(int from, int to)
    {
        ThrowIfDisposed();
        var shape = Shape;
        for (int l = 0; l < shape.Layers; l++)
        {
            Copy(_keys[l], KvPoolShape.RowBytes(shape.KeyWidth, shape.Type) * shape.BlockTokens);
            Copy(_values[l], KvPoolShape.RowBytes(shape.ValueWidth, shape.Type) * shape.BlockTokens);
        }

        // On the accelerator's default stream, which the kernels run on, so it lands between the steps around it.
        void Copy(MemoryBuffer buffer, long blockBytes) =>
            buffer.CopyTo(buffer.Accelerator.DefaultStream, from * blockBytes, buffer.AsRawArrayView(to * blockBytes, blockBytes));
    }

    protected override void Release()
    {
        _release(this);
        Interlocked.Exchange(ref _bytes, 0);
    }
}
