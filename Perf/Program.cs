using BenchmarkDotNet.Running;
using Engine.Perf;

// Kernel suites, each fast path against its scalar reference as the baseline:
//   dotnet run -c Release --project Perf -- --filter '*MatVec*'
//   dotnet run -c Release --project Perf -- --filter '*' --job short
// Quick Stopwatch harness of the repacked Q4_0 kernels: dotnet run -c Release --project Perf -- repacked-q4_0
// Prompt (many-token) kernels of the repacked k-quants: dotnet run -c Release --project Perf -- repacked-prompt
// Grammar masks on the Qwen vocabulary: dotnet run -c Release --project Perf -- grammar
if (args is ["repacked-q4_0"]) RepackedQ4_0Benchmarks.Quick();
else if (args is ["f16-decode", ..]) F16DecodeQuick.Quick(args.Length > 1 ? args[1] : null);
else if (args is ["repacked-prompt"]) RepackedPromptQuick.Quick();
else if (args is ["grammar"]) GrammarBenchmarks.Quick();
else BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
