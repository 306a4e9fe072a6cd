using System.Diagnostics;
using System.Text.RegularExpressions;
using Engine.Tests.Support;
using Xunit.Abstractions;

namespace Engine.Tests.Docs;

/// <summary>
/// The course in docs/learn: every lesson is a .NET file-based program that recomputes a piece of the forward pass by
/// hand and exits non-zero when its numbers disagree with the engine's. Each runs here as a reader runs it
/// (<c>dotnet run docs/learn/NN-name.cs</c> from the repository root), in the test assembly's configuration so that the
/// engine it references is the one this test run built (no second, Debug build). Each lesson is compiled as its own
/// small app (a few seconds each; all ten take about a minute on two cores), so they run one after another, once.
/// </summary>
[Trait("Category", "Course")]
public sealed class LearnCourseTests(ITestOutputHelper output)
{
    static readonly string Folder = TestPaths.Repo("docs", "learn");

    public static TheoryData<string> Lessons()
    {
        var data = new TheoryData<string>();
        foreach (var file in LessonFiles()) data.Add(file);
        return data;
    }

    static IEnumerable<string> LessonFiles() =>
        Directory.EnumerateFiles(Folder, "*.cs").Select(Path.GetFileName).Where(name => Regex.IsMatch(name!, @"^\d\d-[a-z0-9-]+\.cs$"))
            .Order(StringComparer.Ordinal)!;

    [Fact]
    public void The_course_has_its_ten_lessons_each_listed_in_the_readme_and_referencing_the_engine()
    {
        var lessons = LessonFiles().ToList();
        lessons.Select(name => name[..2]).Should().Equal(Enumerable.Range(1, 10).Select(n => n.ToString("00")));
        string readme = File.ReadAllText(Path.Combine(Folder, "README.md"));
        foreach (var lesson in lessons)
        {
            readme.Should().Contain($"dotnet run docs/learn/{lesson}", "the README lists every lesson");
            File.ReadLines(Path.Combine(Folder, lesson)).First().Should().Be("#:project ../../Engine/Engine.csproj", lesson);
        }
    }

    [Theory]
    [MemberData(nameof(Lessons))]
    public void Lesson_runs_and_its_numbers_agree_with_the_engine(string lesson)
    {
        // Same configuration as this test assembly: .../Engine.Tests/bin/<Configuration>/net10.0/
        string configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        var psi = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = TestPaths.RepoRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "run", "-c", configuration, $"docs/learn/{lesson}" }) psi.ArgumentList.Add(argument);
        // `dotnet test` hands its MSBuild location to the test host; a nested `dotnet run` must find its own.
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
            psi.Environment.Remove(key);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";

        var clock = Stopwatch.StartNew();
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"dotnet run docs/learn/{lesson} did not finish in 5 minutes");
        }
        // The compiler's warnings about the engine's own sources are not the lesson's output.
        string shown = string.Join('\n', stdout.Result.Split('\n').Where(line => !line.Contains(": warning ", StringComparison.Ordinal)));
        output.WriteLine($"dotnet run docs/learn/{lesson}: exit {process.ExitCode} in {clock.Elapsed.TotalSeconds:F1} s\n{shown}\n{stderr.Result}");
        process.ExitCode.Should().Be(0, $"the lesson's numbers should agree with the engine's:\n{shown}\n{stderr.Result}");
    }
}
