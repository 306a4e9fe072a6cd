using System.Diagnostics;
using Engine.Quantization.Repacked;

namespace Engine.Perf;

/// <summary>The prompt form (many tokens) of the repacked k-quant layouts on the shapes of a 1.5B model, one thread,
/// best of 5: GMAC/s (rows x k x tokens multiply-adds per second) of Q4_Kx8, Q4_Kx16, Q6_Kx8 and Q6_Kx16 over 64 tokens, the row range
/// one work item of the CPU backend covers repeated over the whole matrix.
///   dotnet run -c Release --project Perf -- repacked-prompt</summary>
public static unsafe class RepackedPromptQuick
{
    public static void Quick()
    {
        (int Rows, int K)[] shapes = Environment.GetEnvironmentVariable("SHAPES") is { } env
            ? env.Split(',').Select(x => x.Split('x')).Select(p => (int.Parse(p[0]), int.Parse(p[1]))).ToArray()
            : [(1536, 1536), (8960, 1536), (1536, 8960)];
        foreach (var (rows, k) in shapes)
        {
            Console.WriteLine($"{rows} x {k}: Q8_0 rows {MeasureRows(Engine.Formats.GgmlType.Q8_0, rows, k):F1}, Q8_0x8 {Measure<Q8_0x8>(rows, k):F1}, Q4_Kx8 {Measure<Q4_Kx8>(rows, k):F1} GMAC/s, Q4_Kx16 {Measure<Q4_Kx16>(rows, k):F1} GMAC/s, Q6_Kx8 {Measure<Q6_Kx8>(rows, k):F1} GMAC/s, Q6_Kx16 {Measure<Q6_Kx16>(rows, k):F1} GMAC/s");
        }
    }

    /// <summary>The row kernels of an unrepacked type (Q8_0 is not repacked): GMAC/s, or GB/s for one token.</summary>
    public static double MeasureRows(Engine.Formats.GgmlType type, int rows, int k)
    {
        int tokens = int.Parse(Environment.GetEnvironmentVariable("TOKENS") ?? "64");
        var format = (Engine.Quantization.RowFormat)Engine.Quantization.RowFormats.For(type);
        var weights = RandomWeights.Quantized(type, rows, k, out long rowBytes);
        int actBytes = format.ActivationBytes(k);
        var act = new byte[actBytes * tokens];
        for (int t = 0; t < tokens; t++) format.QuantizeActivations(RandomWeights.Floats(k, seed: 7 + t), act.AsSpan(t * actBytes, actBytes));
        var y = new float[rows * tokens];
        fixed (byte* w = weights)
        {
            byte* pw = w;
            void Run() => Engine.Quantization.RowFormats.MatMulRows(format, pw, rowBytes, k, act, actBytes, tokens, y, rows, 0, rows);
            for (int i = 0; i < 3; i++) Run();
            double best = double.MaxValue;
            for (int i = 0; i < 5; i++)
            {
                var clock = Stopwatch.StartNew();
                Run();
                best = Math.Min(best, clock.Elapsed.TotalSeconds);
            }
            if (tokens == 1) return (double)weights.Length / best / 1e9;
            return (double)rows * k * tokens / best / 1e9;
        }
    }

    static double Measure<TLayout>(int rows, int k) where TLayout : RepackedMatrix<TLayout>, IRepackedLayout
    {
        int tokens = int.Parse(Environment.GetEnvironmentVariable("TOKENS") ?? "64");
        var format = TLayout.Source;
        var weights = RandomWeights.Quantized(format.Type, rows, k, out long rowBytes);
        var packed = new byte[RepackedMatrix<TLayout>.PackedBytes(rows, k)];
        RepackedMatrix<TLayout>.Repack(weights, rowBytes, rows, k, packed);
        int actBytes = format.ActivationBytes(k);
        var act = new byte[actBytes * tokens];
        for (int t = 0; t < tokens; t++) format.QuantizeActivations(RandomWeights.Floats(k, seed: 7 + t), act.AsSpan(t * actBytes, actBytes));
        var y = new float[rows * tokens];
        for (int i = 0; i < 3; i++) RepackedMatrix<TLayout>.MatMul(packed, rows, k, act, tokens, y);
        double best = double.MaxValue;
        for (int i = 0; i < 5; i++)
        {
            var clock = Stopwatch.StartNew();
            RepackedMatrix<TLayout>.MatMul(packed, rows, k, act, tokens, y);
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        if (tokens == 1) return (double)packed.Length / best / 1e9; // decode: GB/s of weights
        return (double)rows * k * tokens / best / 1e9;
    }
}
