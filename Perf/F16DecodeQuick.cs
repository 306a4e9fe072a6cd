using System.Diagnostics;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Formats;
using Engine.Quantization;
using Engine.Quantization.Repacked;

namespace Engine.Perf;

/// <summary>F16 decode (one token) on the shapes of a 1.5B model, one thread, best of 9: GB/s of weights read by the
/// row kernel and by the repacked 8-row layout (<see cref="F16x8"/>; AVX-512 machines repack F16 at load).
///   dotnet run -c Release --project Perf -- f16-decode [F16.gguf]</summary>
public static unsafe class F16DecodeQuick
{
    public static void Quick(string? file = null)
    {
        using var gguf = file is null ? null : Engine.Formats.Gguf.GgufFile.Open(file);
        (int Rows, int K, string Tensor)[] shapes = [(1536, 1536, "blk.0.attn_q.weight"), (256, 1536, "blk.0.attn_k.weight"),
            (8960, 1536, "blk.0.ffn_up.weight"), (1536, 8960, "blk.0.ffn_down.weight"), (151936, 1536, "token_embd.weight")];
        foreach (var (rows, k, tensor) in shapes)
        {
            long rowBytes = 2L * k;
            var weights = gguf is null ? RandomWeights.Quantized(GgmlType.F16, rows, k, out rowBytes) : gguf.GetTensor(tensor).Bytes.ToArray();
            if (gguf is not null)
            {
                int special = 0;
                var h = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(weights);
                for (int b = 0; b + 32 <= h.Length; b += 32)
                    for (int j = 0; j < 32; j++)
                        if (((h[b + j] + 0x400) & 0x7800) == 0) { special++; break; }
                Console.WriteLine($"{tensor}: {100.0 * special / (h.Length / 32):F1}% of 32-blocks hold a zero, subnormal, inf or nan");
            }
            var format = F16Format.Instance;
            var act = new byte[format.ActivationBytes(k)];
            format.QuantizeActivations(RandomWeights.Floats(k, 5), act);
            var y = new float[rows];
            double bytes = (double)rows * rowBytes;
            fixed (byte* w = weights) fixed (byte* a = act) fixed (float* py = y)
            {
                byte* pw = w; byte* pa = a; float* yy = py;
                double Best(Action run)
                {
                    for (int i = 0; i < 20; i++) run(); // past the JIT's first tiers
                    double best = double.MaxValue;
                    for (int i = 0; i < 9; i++)
                    {
                        var clock = Stopwatch.StartNew();
                        run();
                        best = Math.Min(best, clock.Elapsed.TotalSeconds);
                    }
                    return bytes / best / 1e9;
                }
                double engine = Best(() => format.MatVecCore(pw, rowBytes, k, pa, yy, 0, rows));
                if (gguf is not null)
                {
                    byte* mapped = gguf.GetTensor(tensor).Pointer;
                    double fromMap = Best(() => format.MatVecCore(mapped, rowBytes, k, pa, yy, 0, rows));
                    double fromMapTiles = Best(() => { for (int r = 0; r < rows; r += 16) format.MatVecCore(mapped, rowBytes, k, pa, yy, r, Math.Min(rows, r + 16)); });
                    Console.WriteLine($"  from the map: {fromMap:F1} GB/s, in tiles of 16 rows {fromMapTiles:F1} GB/s, reading the map alone {Best(() => StreamOnly(mapped, (long)bytes)):F1} GB/s");
                }
                double stream = Best(() => StreamOnly(pw, (long)bytes));
                string repacked = "";
                if (F16x8.CanRepack(rows, k))
                {
                    var packed = GC.AllocateUninitializedArray<byte>(checked((int)F16x8.PackedBytes(rows, k)), pinned: true);
                    F16x8.Repack(new ReadOnlySpan<byte>(pw, checked((int)bytes)), rowBytes, rows, k, packed);
                    fixed (byte* pp = packed)
                    {
                        byte* ppp = pp;
                        repacked = $", repacked 8 rows {Best(() => RepackedFormats.For(GgmlType.F16, rows, k)?.MatVec(ppp, k, pa, yy, 0, rows / 8)):F1} GB/s";
                        if (RepackedFormats.For(GgmlType.F16, rows, k) is null) repacked = " (this machine does not repack F16)";
                    }
                }
                Console.WriteLine($"{rows} x {k}: row kernel {engine:F1} GB/s{repacked}, reading alone {stream:F1} GB/s");
            }
        }
    }

    /// <summary>The weights read with no arithmetic but a running OR: the memory's own limit for one thread.</summary>
    static void StreamOnly(byte* p, long bytes)
    {
        var acc = Vector512<byte>.Zero;
        for (long i = 0; i + 64 <= bytes; i += 64) acc |= Vector512.Load(p + i);
        if (acc == Vector512<byte>.One) Console.Write("");
    }
}
