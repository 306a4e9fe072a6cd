using System.Diagnostics;

namespace Engine.Tests.Support;

/// <summary>Runs the built `engine` command as a user would, capturing its output.</summary>
public static class CliRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed);

    static string EngineDll()
    {
        // Same configuration as the test assembly: .../Engine.Tests/bin/<Configuration>/net10.0/
        var testDir = new DirectoryInfo(AppContext.BaseDirectory);
        string configuration = testDir.Parent!.Name;
        var dll = Path.Combine(TestPaths.RepoRoot, "Engine.Cli", "bin", configuration, testDir.Name, "engine.dll");
        if (!File.Exists(dll)) throw new FileNotFoundException($"the CLI is not built at {dll}; build Engine.sln first");
        return dll;
    }

    public static Result Run(params string[] args) => RunWithInput(null, args);

    public static Result RunWithInput(string? stdin, params string[] args) => RunWithEnvironment(null, stdin, args);

    /// <summary>Runs the command with <paramref name="environment"/> added to (a null value: removed from) this process's.</summary>
    public static Result RunWithEnvironment(IReadOnlyDictionary<string, string?>? environment, string? stdin, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null) psi.Environment.Remove(name);
            else psi.Environment[name] = value;
        }
        psi.ArgumentList.Add(EngineDll());
        foreach (var a in args) psi.ArgumentList.Add(a);
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        if (stdin is not null) p.StandardInput.Write(stdin);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000)) { p.Kill(true); throw new TimeoutException("engine " + string.Join(' ', args) + " did not finish in 120 s"); }
        return new Result(p.ExitCode, stdout.Result, stderr.Result, sw.Elapsed);
    }
}
