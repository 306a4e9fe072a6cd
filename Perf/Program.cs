using BenchmarkDotNet.Running;

// Kernel suites, each fast path against its scalar reference as the baseline:
//   dotnet run -c Release --project Perf -- --filter '*MatVec*'
//   dotnet run -c Release --project Perf -- --filter '*' --job short
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
