using System.Text.Json;
using Engine.Tests.Support;

namespace Engine.Tests.Cli;

/// <summary>llama.cpp's control-vector options on the command line: --control-vector F, --control-vector-scaled F S
/// (both repeatable) and --control-vector-layer-range A B, on run, chat, logits and serve; the options taking two
/// values are strict.</summary>
public class ControlVectorCliTests
{
    static readonly string Folder = TestPaths.Repo("Engine.Tests", "TestData", "control-vectors");
    static string Vector(string name) => Path.Combine(Folder, name);

    [Theory]
    [InlineData("stories260K.a+b.2-3", "cpu")]
    [InlineData("fx-llama-F32.a+b", "cpu")]
    // The GPU backend's code on ILGPU's CPU accelerator: the hooks read and write device buffers there.
    [InlineData("stories260K.a+b.2-3", "ilgpu-cpu")]
    public void Logits_with_llama_cpp_s_options_match_llama_cpp(string name, string device)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "cases.json")));
        var c = json.RootElement.GetProperty("cases").EnumerateArray().Single(e => e.GetProperty("name").GetString() == name);
        // The options exactly as llama.cpp was given them, the files with their paths here.
        var options = c.GetProperty("options").EnumerateArray().Select(o => o.GetString()!)
            .Select(o => o.EndsWith(".gguf") ? Vector(o) : o);
        var tokens = string.Join(' ', c.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()));
        var output = Path.Combine(Path.GetTempPath(), $"engine-cvec-{Guid.NewGuid():N}.f32");
        try
        {
            var r = CliRunner.Run(["logits", "--model", TestPaths.Repo(c.GetProperty("model").GetString()!.Split('/')), "--tokens", tokens,
                "--all", "--out", output, "--device", device, .. options]);
            r.ExitCode.Should().Be(0, r.Stderr);
            var ours = GoldenCase.ReadFloats(output);
            var reference = GoldenCase.ReadFloats(Path.Combine(Folder, c.GetProperty("logits_file").GetString()!));
            ours.Length.Should().Be(reference.Length);
            LogitCompare.MaxAbsDiff(ours, reference).Should().BeLessThanOrEqualTo(1e-3);
        }
        finally { File.Delete(output); }
    }

    [Fact]
    public void Run_output_changes_with_a_control_vector_and_repeats_add_up()
    {
        string[] greedy = ["run", "Once upon a time", "-n", "24", "--temperature", "0"];
        var plain = CliRunner.Run(greedy);
        var steered = CliRunner.Run([.. greedy, "--control-vector", Vector("stories260K.a.cvec.gguf")]);
        // a + (-1) x a: the repeats cancel, so the story is the plain one again.
        var cancelled = CliRunner.Run([.. greedy, "--control-vector", Vector("stories260K.a.cvec.gguf"),
            "--control-vector-scaled", Vector("stories260K.a.cvec.gguf"), "-1"]);
        plain.ExitCode.Should().Be(0, plain.Stderr);
        steered.ExitCode.Should().Be(0, steered.Stderr);
        cancelled.ExitCode.Should().Be(0, cancelled.Stderr);
        steered.Stdout.Should().NotBe(plain.Stdout);
        cancelled.Stdout.Should().Be(plain.Stdout);
    }

    [Theory]
    [InlineData("run", "--control-vector-scaled", "{a}", null, "*--control-vector-scaled needs two values, and its second is missing*")]
    [InlineData("run", "--control-vector-scaled", "{a}", "--json", "*--control-vector-scaled needs two values*(found option --json)*")]
    [InlineData("chat", "--control-vector-layer-range", "2", null, "*--control-vector-layer-range needs two values*")]
    [InlineData("logits", "--control-vector", null, null, "*--control-vector needs a value*")]
    [InlineData("serve", "--control-vector-scaled", "{a}", "strong", "*strength S must be a number, got 'strong'*")]
    [InlineData("serve", "--control-vector-layer-range", "3", "2", "*--control-vector-layer-range 3 2 is empty*")]
    [InlineData("chat", "--control-vector-layer-range", "1", "x", "*A and B must be layer numbers, got 'x'*")]
    [InlineData("run", "--control-vector", "no-such-file.gguf", null, "*no such control vector file: no-such-file.gguf*")]
    public void A_bad_option_is_a_usage_error_naming_it(string command, string option, string? first, string? second, string message)
    {
        var args = new List<string> { command };
        if (command == "logits") args.AddRange(["--model", TestPaths.Repo("models", "stories260K.gguf"), "--tokens", "1 2", "--out", "x.f32"]);
        // Every command with a control vector given, so the range options have one to apply to.
        if (option == "--control-vector-layer-range") args.AddRange(["--control-vector", Vector("stories260K.a.cvec.gguf")]);
        args.Add(option);
        foreach (var value in new[] { first, second })
            if (value is not null) args.Add(value == "{a}" ? Vector("stories260K.a.cvec.gguf") : value);
        var r = CliRunner.Run([.. args]);
        r.ExitCode.Should().Be(2, r.Stderr);
        r.Stderr.Should().Match(message);
    }

    [Fact]
    public void A_vector_for_another_model_is_an_error_naming_the_file()
    {
        var wide = Vector("fx-llama.a.cvec.gguf");
        var r = CliRunner.Run("run", "Hi", "-n", "4", "--control-vector", wide);
        r.ExitCode.Should().Be(1);
        r.Stdout.Should().BeEmpty();
        r.Stderr.Should().Contain(wide).And.Contain("256").And.Contain("embedding length is 64");
    }
}
