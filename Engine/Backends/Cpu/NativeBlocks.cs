using System.Runtime.InteropServices;

namespace Engine.Backends.Cpu;

/// <summary>
/// Native memory for large copies of weights (the repacked matrices), asked to be backed by huge pages.
///
/// Why: the first write to each 4 KiB page of a fresh allocation is a page fault, and on a virtual machine a fault
/// costs microseconds (measured on the Firecracker VM this was written on: 3.7 s per GiB touched, 14 us a page), which
/// made repacking a 3 GB F16 model take 7 s, nearly all of it faults. Linux backs a range with 2 MiB pages when asked
/// with madvise(MADV_HUGEPAGE) (transparent huge pages in their default "madvise" mode): 0.07-2.4 s per GiB on the same
/// VM. The call goes to the C library the runtime itself runs on, no native library of ours; anywhere it is missing
/// or refused, the memory is the same, only its pages are small.
/// </summary>
internal static unsafe class NativeBlocks
{
    const long HugePage = 2 << 20;
    const int MadviseHugePage = 14; // MADV_HUGEPAGE in Linux's uapi/asm-generic/mman-common.h

    static bool s_adviceUnavailable;

    /// <summary>bytes of uninitialized native memory, 64-byte aligned (2 MiB when it is at least one huge page), freed
    /// with <see cref="Free"/>.</summary>
    public static byte* Allocate(long bytes)
    {
        bool large = bytes >= HugePage && OperatingSystem.IsLinux();
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, large ? (nuint)HugePage : 64);
        if (large && !s_adviceUnavailable)
        {
            try { _ = madvise((nint)p, (nuint)(bytes / HugePage * HugePage), MadviseHugePage); }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { s_adviceUnavailable = true; }
        }
        return p;
    }

    public static void Free(byte* p) => NativeMemory.AlignedFree(p);

    [DllImport("libc", EntryPoint = "madvise")]
    static extern int madvise(nint address, nuint length, int advice);
}
